"""Read the YAML config file: interpolate `${...}`, validate, report every problem.

Interpolation forms, inside any string value:
  ${VAR}              environment variable VAR (an error if unset)
  ${VAR:-default}     VAR, or `default` when VAR is unset or empty
  ${file:/path}       the contents of a file (one trailing newline removed)
  ${credential:NAME}  $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=)
  $${                 a literal `${`
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.schema import BookingsSection, Config, DeviceConfig, SourceCommon
from gateway.config.validate import ConfigError, Interpolated, Problem, build
from gateway.config.yamlfile import YamlError, load_yaml

#: where `gateway` looks for its config when no --config is given (deploy/install.sh puts
#: it there); GATEWAY_CONFIG names another
DEFAULT_CONFIG = "/etc/edge-gateway/gateway.yaml"
CONFIG_ENV = "GATEWAY_CONFIG"

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_DEVICE_KEYS = {f for f in DeviceConfig.__dataclass_fields__ if f != "params"}


def _interpolate(text: str, path: str, env: Mapping[str, str], problems: list[Problem]) -> str:
    if "${" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        ref = match.group(1)
        if ref.startswith("file:"):
            return _read_secret_file(Path(ref[5:]), path, problems)
        if ref.startswith("credential:"):
            folder = env.get("CREDENTIALS_DIRECTORY")
            if not folder:
                problems.append(Problem(path, f"{ref}: CREDENTIALS_DIRECTORY is not set "
                                              "(is the service started by systemd with "
                                              "LoadCredential=?)"))
                return ""
            return _read_secret_file(Path(folder) / ref[11:], path, problems)
        name, sep, default = ref.partition(":-")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.append(Problem(path, f"${{{ref}}} is not a valid variable reference"))
            return ""
        value = env.get(name)
        if value:
            return value
        if sep:
            return default
        if value is None:
            problems.append(Problem(path, f"environment variable {name} is not set "
                                          f"(write ${{{name}:-default}} to give a default)"))
        return ""

    return Interpolated(_REF.sub(one, text))


def _read_secret_file(file: Path, path: str, problems: list[Problem]) -> str:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(path, f"cannot read {file}: {exc.strerror or exc}"))
        return ""
    return text.removesuffix("\n")


def _walk(node: Any, path: str, env: Mapping[str, str], problems: list[Problem]) -> Any:
    if isinstance(node, str):
        return _interpolate(node, path, env, problems)
    if isinstance(node, list):
        return [_walk(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {
            k: _walk(v, f"{path}.{k}" if path else str(k), env, problems) for k, v in node.items()
        }
    return node


def _split_device_params(data: Any) -> Any:
    """Device keys that are not DeviceConfig fields are the profile's parameters."""
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        return data
    devices = []
    for dev in data["devices"]:
        if isinstance(dev, dict) and "params" not in dev:
            params = {k: v for k, v in dev.items() if k not in _DEVICE_KEYS}
            dev = {k: v for k, v in dev.items() if k in _DEVICE_KEYS}
            dev["params"] = params
        devices.append(dev)
    return {**data, "devices": devices}


def parse_config(text: str, source: str = "<config>",
                 env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate config text; raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    try:
        raw, problems = load_yaml(text)
    except YamlError as exc:
        raise ConfigError([Problem(exc.where, f"not valid YAML: {exc.what}")], source) from None
    if raw is None:
        raw = {}
    unresolved: list[Problem] = []
    data = _split_device_params(_walk(raw, "", env, unresolved))
    # The kinds of sink and source, each with its settings class (they fill the variants
    # of SinkCommon and SourceCommon).
    import gateway.sinks.registry
    import gateway.sources.registry  # noqa: F401
    config, more = build(Config, data)
    # A `${VAR}` that could not be resolved is the one cause of whatever else is wrong
    # with that key (a port that is '' is "not an integer"): report the cause alone.
    causes = {p.path for p in unresolved}
    problems.extend(unresolved)
    problems.extend(p for p in more if p.path not in causes)
    # Devices are checked against their profiles even when other keys have problems,
    # so one `gateway check` lists everything to fix.
    if config is not None and all(isinstance(d, str) for d in config.gateway.profiles_dirs):
        from gateway.profiles.library import ProfileLibrary

        library = ProfileLibrary.for_config(config, base_dir=Path(source).parent)
        problems.extend(library.problems)
        problems.extend(p for i, device in enumerate(config.devices)
                        if isinstance(device, DeviceConfig)
                        for p in library.check_device(device, f"devices[{i}]"))
        problems.extend(_monitor_metric_problems(config, library))
        problems.extend(_device_source_problems(config, library))
        # Two devices on one topic are looked for once everything else is right: the
        # check builds the decoder, which needs sound devices (their zones, say).
        if not problems and all(isinstance(d, DeviceConfig) for d in config.devices):
            from gateway.profiles.overlaps import topic_overlaps

            problems.extend(topic_overlaps(config.devices, library)[0])
    if config is not None:
        problems.extend(_check_file_problems(config, Path(source).parent))
    if config is not None and isinstance(config.bookings, BookingsSection):
        problems.extend(_calendar_problems(config, Path(source).parent))
    # "is required" adds nothing when the same key already has a problem
    # (say, its ${VAR} is not set).
    other = {p.path for p in problems if not p.message.startswith("is required")}
    problems = [p for p in problems
                if not (p.message.startswith("is required") and p.path in other)]
    if problems or config is None:
        raise ConfigError(problems, source)
    return config


_PLACEHOLDERS = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def _check_file_problems(config: Config, folder: Path) -> list[Problem]:
    """A custom check's file must be there and be Python: a syntax error is named by
    file and line now, not when the gateway would load it."""
    out = []
    for i, check in enumerate(config.checks):
        if getattr(check, "type", "") != "custom" or not getattr(check, "file", ""):
            continue
        path = folder / check.file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            out.append(Problem(f"checks[{i}].file", f"cannot read {path}: {exc.strerror}"))
            continue
        try:
            compile(text, str(path), "exec")
        except SyntaxError as exc:
            out.append(Problem(f"checks[{i}].file",
                               f"{path}:{exc.lineno}: {exc.msg} (a syntax error)"))
    return out


def _device_source_problems(config: Config, library: Any) -> list[Problem]:
    """A device whose profile reads another kind of source (serial lines, an ELM327's
    answers) must name a configured source of that kind in its `source` parameter."""
    out = []
    for i, device in enumerate(config.devices):
        profile = library.profiles.get(device.profile) if isinstance(device, DeviceConfig) \
            else None
        kinds = {r.source for r in profile.spec.messages} - {"mqtt"} if profile else set()
        name = device.params.get("source") if profile else None
        if not kinds or not isinstance(name, str):
            continue
        have = {s.name: getattr(s, "type", "") for s in config.sources
                if isinstance(s, SourceCommon)}
        wanted = {"serial": ("serial",), "obd": ("elm327",), "gpio": ("gpio",)}
        types = {t for k in kinds for t in wanted.get(k, ())}
        if have.get(name) not in types:
            fitting = ", ".join(n for n, t in have.items() if t in types) or "none"
            kind = " or ".join(sorted(types))
            out.append(Problem(f"devices[{i}].source",
                               f"{name!r} is not a source of type {kind} in sources[] "
                               f"(those configured: {fitting})"))
    return out


def _monitor_metric_problems(config: Config, library: Any) -> list[Problem]:
    """A monitor's metric must be one its devices can send (a typo alerts on nothing)."""
    import difflib

    from gateway.profiles.library import metric_matches, metric_names

    names: dict[str, list[str]] = {}
    for device in config.devices:
        profile = library.get(device.profile) if isinstance(device, DeviceConfig) else None
        if profile is not None:
            names[device.id] = metric_names(profile, device.params)
    out = []
    for i, m in enumerate(config.monitors):
        metric = getattr(m, "metric", "")
        if not m or not metric:
            continue
        watched = [d for d in (m.devices or names) if d in names]
        if not watched:
            continue
        templates = sorted({t for d in watched for t in names[d]})
        # A template of placeholders only ("{family}.{key}": any Tasmota sensor) fits any
        # name: a typo of a known name must not hide behind it.
        generic = [t for t in templates if not _PLACEHOLDERS.sub("", t).strip(".")]
        concrete = [t for t in templates if t not in generic]
        near = difflib.get_close_matches(metric, concrete, n=3, cutoff=0.6)
        if any(metric_matches(t, metric) for t in concrete):
            continue
        if any(metric_matches(t, metric) for t in generic) and not \
                difflib.get_close_matches(metric, concrete, n=1, cutoff=0.85):
            continue
        whose = f"{watched[0]}'s" if len(watched) == 1 else "its devices'"
        hint = f"did you mean {', '.join(near)}?" if near else \
            f"{whose} profiles give: {', '.join(templates[:12])}" + (
                " ..." if len(templates) > 12 else "")
        out.append(Problem(f"monitors[{i}].metric",
                           f"no device it watches sends {metric!r}; {hint}"))
    return out


def _calendar_problems(config: Config, config_dir: Path) -> list[Problem]:
    """A bookings calendar given as a file must be there and readable (a URL is read by
    the running gateway, which keeps its last good copy)."""
    from zoneinfo import ZoneInfo

    from gateway.monitors.calendar import CalendarError, bookings

    assert config.bookings is not None
    where = config.bookings.calendar
    if not where or where.startswith(("http://", "https://")):
        return []
    path = (config_dir / where).expanduser()
    try:
        zone = ZoneInfo(config.gateway.timezone)
        bookings(path.read_bytes(), zone, 0, 1)
    except OSError as exc:
        return [Problem("bookings.calendar", f"cannot read {path}: {exc.strerror or exc}")]
    except (CalendarError, ValueError) as exc:
        return [Problem("bookings.calendar", f"{path}: {exc}")]
    return []


def config_warnings(config: Config, config_file: str | Path) -> list[Problem]:
    """What is legal but likely not meant: `gateway check` prints these, `run` logs them."""
    from gateway.profiles.library import ProfileLibrary
    from gateway.profiles.overlaps import topic_overlaps

    out = []
    if not config.devices:
        out.append(Problem("devices", "none configured: the gateway reads nothing but its own "
                                      "health"))
    if not config.sinks:
        out.append(Problem("sinks", "none configured: readings stay in the store (shown by "
                                    "`gateway status` and `gateway store export`) until its "
                                    "budget is full, then the oldest are evicted (counted)"))
    library = ProfileLibrary.for_config(config, Path(config_file).parent)
    out.extend(topic_overlaps(config.devices, library)[1])
    return out


def data_dir(config: Config, config_dir: Path) -> Path:
    """data_dir is relative to the config file's folder, whatever the working directory."""
    path = Path(os.path.expanduser(config.gateway.data_dir))
    return path if path.is_absolute() else (config_dir / path).resolve()


def config_path(given: str | None, env: Mapping[str, str] | None = None) -> str:
    """The config file to use: --config if given, else $GATEWAY_CONFIG, else DEFAULT_CONFIG."""
    env = os.environ if env is None else env
    return given or env.get(CONFIG_ENV) or DEFAULT_CONFIG


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        hint = ""
        if isinstance(exc, FileNotFoundError) and str(path) == DEFAULT_CONFIG:
            hint = (f" (the default: give --config FILE or set {CONFIG_ENV}; "
                    "deploy/install.sh writes this one)")
        raise ConfigError([Problem("", f"cannot read config: {exc.strerror or exc}{hint}")],
                          str(file)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem("", f"not UTF-8 text (byte {exc.start})")],
                          str(file)) from None
    return parse_config(text, str(file), env)
