"""`mlfit check --learn` on a real local cluster: a worker verified as the target (mutual TLS, a
certificate naming the target, host facts that match) measures; its figures become verified rows of
the truth store. tests/_cluster.py starts and stops every process by id."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import FAST, assert_no_traceback, run_mlfit

from _cluster import cluster_factory, host_target, make_certs, make_target_cert
from mlfit.errors import ExitCode


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Any]:
    yield from cluster_factory(tmp_path)


@pytest.mark.slow
def test_learn_adds_rows_measured_on_a_verified_worker(make_cluster: Any, small_cnn_model: Path,
                                                        tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make test certificates")
    certs = make_certs(tmp_path / "certs")
    lab = host_target(tmp_path / "lab")
    cert, key = make_target_cert(certs["ca"].parent, "lab-worker", "this-host")
    cluster = make_cluster(certs)
    cluster.start("lab", [sys.executable, "-m", "mlfit", "worker", cluster.address, "--name", "lab", "--no-nanny",
                          "--death-timeout", "30", "--target", str(lab), "--tls-ca-file", str(certs["ca"]),
                          "--tls-cert", str(cert), "--tls-key", str(key)])
    cluster.wait_for_workers(1)
    store, out = tmp_path / "truth.json", tmp_path / "result.json"
    tls = ["--tls-ca-file", str(certs["ca"]), "--tls-cert", str(certs["client"]), "--tls-key", str(certs["client-key"])]
    run = run_mlfit("check", small_cnn_model, "--target", lab, "--cluster", cluster.address, *tls, "--learn",
                    "--truth", store, "--json", out, *FAST, timeout=240)
    assert_no_traceback(run)
    assert run.code in (0, 1, 4), run.output
    assert "learned 1 rows measured on targets" in run.stderr, run.output
    (row,) = json.loads(store.read_text())["rows"]
    assert row["provenance"] == "measured-on-target" and row["hardware"]["id"] == "this-host-hw"
    assert row["target"] == "this-host" and row["structure"]["dense_flops"] > 0 and row["seconds"] > 0
    # the same result file, added by hand: verified rows too; --as-measured-on is refused for it
    again = tmp_path / "again.json"
    added = run_mlfit("truth", "add", out, "--truth", again)
    assert added.code == 0, added.output
    assert json.loads(again.read_text())["rows"][0]["provenance"] == "measured-on-target"
    stated = run_mlfit("truth", "add", out, "--as-measured-on", "rpi4-4gb", "--truth", again)
    assert stated.code == ExitCode.USAGE and "verified worker" in stated.stderr, stated.output
    fitted = run_mlfit("truth", "fit", "--truth", store)
    assert fitted.code == 0, fitted.output
    assert "device model adapted with 1 rows measured on this-host-hw" in fitted.stdout
