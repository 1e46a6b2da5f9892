"""The network side of ``--cluster`` and ``mlfit worker``, without importing ``distributed``:
address parsing, the interface a worker binds, TLS file checks, and a bounded probe that
tells a Dask scheduler from anything else listening on a port.

Decisions (see docs/scale.md, "Security"):
- A worker listens only on the interface that reaches its scheduler: a loopback scheduler
  gives a loopback worker; otherwise the local address of the route to the scheduler (found by
  connecting a UDP socket, which sends nothing).
- TLS is Dask's own mutual TLS (``distributed.security.Security`` with
  ``require_encryption=True``): the three files are checked here, before Dask sees them, so a
  missing file, a key that does not match its certificate or an unreadable CA is a one-line
  exit 2, not a traceback.
- Every connection attempt is bounded: Dask's ``Client(timeout=...)`` bounds the TCP connect
  but not the handshake that follows, so a port that accepts and stays silent would hang it
  for minutes. :func:`probe` reads the scheduler's greeting (a Dask peer speaks first) within
  a deadline before Dask is asked to connect.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from mlfit.errors import ConfigError

SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx)://(\[[0-9a-fA-F:.]+\]|[^/:\s\[\]]+):([0-9]{1,5})$")
PROBE_TIMEOUT_S = 10.0
MAX_PEM_BYTES = 1 << 20  # a certificate chain or key file larger than 1 MiB is not one


@dataclass(frozen=True)
class Address:
    """A parsed Dask address: ``scheme://host:port`` (IPv6 hosts without brackets)."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_address(address: str, flag: str = "--cluster") -> Address:
    """Refuse a scheduler address Dask would spend half a minute failing on."""
    match = _ADDRESS.match(address)
    port = int(match.group(3)) if match else 0
    if not match or not 0 < port < 65536:
        raise ConfigError(
            f"{flag} '{address}': expected a scheduler address such as tcp://HOST:8786",
            "give the address `dask scheduler` printed (tcp:// or tls://, host and port)",
        )
    return Address(match.group(1), match.group(2).strip("[]"), port)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them (``localhost``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def bind_host(scheduler: Address) -> str:
    """The local address of the interface that reaches ``scheduler``.

    Loopback stays loopback. Otherwise a UDP socket is *connected* to the scheduler (no packet
    is sent: connect on a datagram socket only picks the route) and its local address is read.
    """
    if is_loopback(scheduler.host):
        return "::1" if ":" in scheduler.host else "127.0.0.1"
    try:
        infos = socket.getaddrinfo(scheduler.host, scheduler.port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"cannot resolve the scheduler host '{scheduler.host}' ({exc})",
            "check the address, or pass --host with the address this machine should listen on",
        ) from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as sock:
            try:
                sock.connect(sockaddr)
            except OSError:
                continue
            return str(sock.getsockname()[0])
    raise ConfigError(
        f"no route from this machine to the scheduler at {scheduler}",
        "check the network, or pass --host with the address this machine should listen on",
    )


def warn_if_plain_tcp(address: Address, who: str) -> None:
    """Plain tcp:// beyond loopback: anyone on the path can read, and anyone who reaches the
    scheduler can join and run code; say so on stderr (the run goes on)."""
    if address.scheme == "tcp" and not is_loopback(address.host):
        sys.stderr.write(
            f"mlfit: warning: {who} uses unencrypted, unauthenticated tcp:// to {address}; anyone who can "
            "reach it can join the cluster and run code there. Use tls:// with --tls-ca-file, --tls-cert "
            "and --tls-key (docs/scale.md, Security)\n"
        )
        sys.stderr.flush()


@dataclass(frozen=True)
class ClusterTLS:
    """Mutual TLS for the cluster: the CA that signs every member, and this member's own
    certificate and private key (PEM files)."""

    ca_file: Path
    cert: Path
    key: Path

    def validate(self) -> ClusterTLS:
        """Refuse missing, unreadable or mismatched files with a one-line exit 2."""
        for flag, path in (("--tls-ca-file", self.ca_file), ("--tls-cert", self.cert), ("--tls-key", self.key)):
            _check_pem(flag, path)
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                f"--tls-ca-file {self.ca_file}: not a readable PEM CA certificate ({_reason(exc)})",
                "give the CA certificate (ca.pem) that signed the scheduler's and workers' certificates",
            ) from None
        try:
            context.load_cert_chain(str(self.cert), str(self.key))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                f"--tls-cert {self.cert} / --tls-key {self.key}: cannot be used together ({_reason(exc)})",
                "give a PEM certificate and the unencrypted private key it was made for (docs/scale.md)",
            ) from None
        return self

    def security(self, role: str) -> object:
        """Dask's ``Security`` for ``role`` ('client' or 'worker'), encryption required."""
        from distributed.security import Security

        files = {f"tls_{role}_cert": str(self.cert), f"tls_{role}_key": str(self.key)}
        return Security(tls_ca_file=str(self.ca_file), require_encryption=True, **files)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or str(exc) or type(exc).__name__


def _check_pem(flag: str, path: Path) -> None:
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: {exc.strerror or exc}", "give the path of a PEM file") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{flag} {path}: not a regular file", "give the path of a PEM file")
    if info.st_size > MAX_PEM_BYTES:
        raise ConfigError(f"{flag} {path}: {info.st_size} bytes is too large for a PEM file",
                          "give the path of a PEM file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{flag} {path}: not readable by this user", "fix the file's permissions")


def tls_from_flags(ca_file: Path | None, cert: Path | None, key: Path | None) -> ClusterTLS | None:
    """All three TLS flags or none of them."""
    given = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
    if not any(given.values()):
        return None
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        raise ConfigError(
            f"mutual TLS needs all three of --tls-ca-file, --tls-cert and --tls-key; missing {', '.join(missing)}",
            "see docs/scale.md (Security) for a recipe that makes them",
        )
    assert ca_file is not None and cert is not None and key is not None
    return ClusterTLS(ca_file, cert, key).validate()


def check_scheme(address: Address, tls: ClusterTLS | None, flag: str = "--cluster") -> None:
    """tls:// needs the TLS files; the TLS files need tls://."""
    if address.scheme == "tls" and tls is None:
        raise ConfigError(
            f"{flag} {address}: a tls:// scheduler needs --tls-ca-file, --tls-cert and --tls-key",
            "add the CA certificate and this machine's certificate and key (docs/scale.md, Security)",
        )
    if address.scheme != "tls" and tls is not None:
        raise ConfigError(
            f"{flag} {address}: --tls-* flags are given but the address is {address.scheme}://",
            f"use tls://{address.host}:{address.port} (the scheduler must be started with TLS too)",
        )


def probe(address: Address, tls: ClusterTLS | None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Connect, do the TLS handshake when asked, and wait for the peer's first bytes (a Dask
    scheduler greets first), all within ``timeout`` seconds; anything else is a ConfigError."""
    if address.scheme not in ("tcp", "tls"):
        return  # ws/ucx: Dask's own connect timeout is all we have
    hint = "start one with `dask scheduler`, or check the address and port"
    try:
        raw = socket.create_connection((address.host, address.port), timeout=timeout)
    except TimeoutError:
        raise ConfigError(f"cannot reach the Dask scheduler at {address} (no answer within {timeout:g} s)",
                          hint) from None
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {address} ({exc.strerror or exc})", hint) from None
    sock: socket.socket = raw
    try:
        sock.settimeout(timeout)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
            context.check_hostname = False  # Dask's TLS checks the CA signature, not host names
            context.load_cert_chain(str(tls.cert), str(tls.key))
            try:
                sock = context.wrap_socket(raw, server_hostname=None)
            except ssl.SSLCertVerificationError as exc:
                raise ConfigError(
                    f"TLS with {address} failed: its certificate is not signed by --tls-ca-file "
                    f"({exc.verify_message})",
                    "give the CA that signed the scheduler's certificate",
                ) from None
            except (ssl.SSLError, ConnectionError) as exc:
                raise ConfigError(
                    f"TLS handshake with {address} failed ({_reason(exc)})",
                    "is the scheduler started with TLS, and was this certificate signed by its CA?",
                ) from None
        try:
            first = sock.recv(1)
        except TimeoutError:
            raise ConfigError(
                f"{address} accepted the connection but did not answer like a Dask scheduler within "
                f"{timeout:g} s",
                "check the port: it is not a Dask scheduler (or it expects TLS: use tls:// and the --tls-* flags)",
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{address} closed the connection ({_reason(exc)})",
                "is it a Dask scheduler, and does it expect this certificate?",
            ) from None
        if not first:
            raise ConfigError(
                f"{address} closed the connection without answering like a Dask scheduler",
                "check the port, and whether the scheduler expects TLS (tls:// and --tls-* flags)",
            )
    finally:
        sock.close()
