"""Find, load and resolve hardware and profile files into validated objects."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

# Re-exported: they live beside the pydantic-free listing, which `mlfit targets` reads without the models.
from mlfit.catalog.builtin import builtin_names as builtin_names
from mlfit.catalog.builtin import catalog_dir as catalog_dir
from mlfit.catalog.schema import CATALOG_SCHEMA_VERSION, Hardware, Profile, with_container_budget
from mlfit.catalog.yamlload import Located, load_yaml, load_yaml_documents
from mlfit.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _first_error(located: Located, exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    # An unknown key explains a "field required" elsewhere (a typo: `memroy` for `memory`): report it first.
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    field = ".".join(str(p) for p in loc) or "(document)"
    where = located.where(loc, at_key=err["type"] == "extra_forbidden")
    if err["type"] == "extra_forbidden":
        name = str(loc[-1])
        parent = _submodel(model, loc[:-1])
        known = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return ConfigError(f"{where}: unknown key '{field}'", hint)
    message = err["msg"].removeprefix("Value error, ")
    return ConfigError(f"{where}: {field}: {message}")


def _submodel(model: type[BaseModel], loc: list[str | int]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return current if not isinstance(part, str) else None
        annotation = current.model_fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return current


def _validate(located: Located, model: type[M]) -> M:
    data = located.data
    if not isinstance(data, dict):
        raise ConfigError(f"{located.where([])}: expected a mapping of keys at the top level")
    version = data.get("schema_version", CATALOG_SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > CATALOG_SCHEMA_VERSION:
        raise ConfigError(f"{located.where(['schema_version'])}: schema_version {version} is newer than this "
                          f"mlfit understands ({CATALOG_SCHEMA_VERSION})", "install a newer mlfit from its repository")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _first_error(located, exc, model) from None


def load_hardware_file(path: Path) -> Hardware:
    return _validate(load_yaml(path), Hardware)


def load_profile_file(path: Path) -> Profile:
    return _validate(load_yaml(path), Profile)


@dataclass(frozen=True)
class Target:
    """A profile with its hardware resolved: what a check is evaluated against."""

    profile: Profile
    hardware: Hardware
    source: str  # "built-in" or the user's file path
    # Every file the target was read from (profile, hardware, manifest): a report never overwrites one.
    files: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.profile.id


def is_gpu_target(target: Target) -> bool:
    """The target runs the model on a GPU: a non-CPU execution provider on hardware with one
    (a catalog fact: planning, checks and projection all ask it)."""
    return target.profile.execution_provider != "CPUExecutionProvider" and any(
        a.kind == "gpu" for a in target.hardware.accelerators
    )


def _looks_like_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref


def resolve_hardware(ref: str, relative_to: Path | None = None) -> Hardware:
    if ref == "host":
        from mlfit.catalog.hostfacts import host_hardware

        return host_hardware()
    if _looks_like_path(ref):
        path = Path(ref)
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.exists():
            raise ConfigError(f"hardware file '{path}' does not exist", "fix the profile's 'hardware:' reference")
        return load_hardware_file(path)
    return _builtin_hardware(ref)


def hardware_file(ref: str, relative_to: Path | None = None) -> str | None:
    """The file a profile's ``hardware:`` reference is read from (None for ``host``)."""
    if ref == "host":
        return None
    if _looks_like_path(ref):
        path = Path(ref)
        return str(relative_to / path if not path.is_absolute() and relative_to is not None else path)
    return str(catalog_dir("hardware") / f"{ref}.yaml")


def _files(*paths: str | Path | None) -> tuple[str, ...]:
    return tuple(str(p) for p in paths if p is not None)


@cache
def _builtin_hardware(name: str) -> Hardware:
    path = catalog_dir("hardware") / f"{name}.yaml"
    if not path.exists():
        known = builtin_names("hardware")
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"built-in hardware: {', '.join(known)}"
        raise ConfigError(f"unknown hardware '{name}'", hint)
    return load_hardware_file(path)


def resolve_target(ref: str, container: str | None = None) -> Target:
    """A built-in target name, a path to a profile YAML, or a deployment manifest (Kubernetes
    or Compose; ``container`` picks one of its containers), resolved with its hardware."""
    if _looks_like_path(ref):
        path = Path(ref)
        if not path.exists():
            raise ConfigError(f"profile file '{ref}' does not exist", "check the --target path")
        documents = load_yaml_documents(path)
        from mlfit.catalog.manifest import is_manifest, manifest_profile

        if is_manifest(documents):
            profile = manifest_profile(path, container, documents)
            return Target(profile, resolve_hardware(profile.hardware), str(path),
                          _files(path, hardware_file(profile.hardware)))
        if len(documents) != 1:
            raise ConfigError(f"{path}:1:1: expected exactly one YAML document, found {len(documents)}",
                              "a profile is one document; a multi-document file must be a Kubernetes manifest")
        profile = with_container_budget(_validate(documents[0], Profile))
        try:
            hardware = resolve_hardware(profile.hardware, relative_to=path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}", exc.hint) from None
        return Target(profile, hardware, str(path), _files(path, hardware_file(profile.hardware, path.parent)))
    path = catalog_dir("profiles") / f"{ref}.yaml"
    if not path.exists():
        known = builtin_names("profiles")
        close = difflib.get_close_matches(ref, known, n=1)
        hint = (f"did you mean '{close[0]}'? " if close else "") + f"known targets: {', '.join(known)}"
        raise ConfigError(f"unknown target '{ref}'", hint)
    profile = load_profile_file(path)
    return Target(profile, resolve_hardware(profile.hardware), "built-in",
                  _files(path, hardware_file(profile.hardware)))


def builtin_targets() -> list[Target]:
    return [resolve_target(name) for name in builtin_names("profiles")]
