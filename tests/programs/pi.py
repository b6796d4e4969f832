"""A Raspberry Pi install tried on this machine: without systemd, and without changing it.

`PiRoot` is a temporary folder standing in for the folders of the Pi that the install
writes: /etc/mosquitto, /etc/edge-gateway, /etc/systemd/system, /opt/edge-gateway,
/usr/local/bin, /var/lib/mosquitto, /var/log/mosquitto and /var/lib/edge-gateway.
Every program of the install runs in a private mount namespace that shows them at
their real paths: the machine's /etc, /opt, /usr/local and /var as read-only overlays
with the root's files on top, and those folders bound writable. So deploy/install.sh,
the systemd unit's command lines and Debian's stock mosquitto.conf run unchanged, a
write anywhere else fails (read-only), and the machine's own folders never change.
The view has the `gateway` account that install.sh would create, and Debian's
mosquitto package files as the package ships them (from its .deb, checked against the
checksums dpkg keeps).

`Netns` is a network namespace joined to this one by a veth pair. A broker in it may
listen on port 1883 of every address without clashing with the machine's own broker,
and a client out here reaches it from a non-loopback address, as a plug on the hall's
Wi-Fi would.
"""

from __future__ import annotations

import atexit
import grp
import hashlib
import ipaddress
import itertools
import os
import pwd
import random
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .process import ManagedProcess

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "deploy" / "install.sh"
SERVICE = "edge-gateway.service"
# What sudo (Debian's secure_path) and systemd give a command to find programs.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APT_CACHE = Path("/var/cache/apt/archives")


def _run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def unavailable() -> str | None:
    """Why this machine cannot try the install this way, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces, chown to other users)"
    for tool in ("ip", "unshare", "setpriv", "dpkg-deb", "dpkg-query", "mosquitto_passwd"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if _run(["dpkg-query", "-W", "-f=${Status}", "mosquitto"]).stdout != \
            "install ok installed":
        return "needs Debian's mosquitto package installed (apt-get install mosquitto)"
    with tempfile.TemporaryDirectory() as tmp:
        lower = Path(tmp) / "lower"
        lower.mkdir()
        probe = _run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                      f"mount -t overlay overlay -o lowerdir={lower}:/opt /opt"])
        if probe.returncode != 0:
            return f"needs overlayfs in a mount namespace: {probe.stderr.strip()}"
    return None


# -- Debian's mosquitto package, as it ships --------------------------------------------

def installed_version(package: str) -> str:
    return _run(["dpkg-query", "-W", "-f=${Version}", package], check=True).stdout


def mosquitto_deb(download_dir: Path) -> Path:
    """The .deb of the installed mosquitto: from apt's cache, else `apt-get download`."""
    version = installed_version("mosquitto")
    for deb in sorted(APT_CACHE.glob("mosquitto_*.deb")):
        if _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip() == version:
            return deb
    got = _run(["apt-get", "download", f"mosquitto={version}"], cwd=download_dir)
    found = sorted(download_dir.glob("mosquitto_*.deb"))
    if got.returncode != 0 or not found:
        raise RuntimeError(f"no .deb of mosquitto {version}: none in {APT_CACHE}, and "
                           f"apt-get download said: {got.stderr.strip()}")
    return found[0]


def conffile_md5s(package: str) -> dict[str, str]:
    """What dpkg recorded for the package's config files as shipped: path -> md5."""
    out = _run(["dpkg-query", "-W", "-f=${Conffiles}", package], check=True).stdout
    sums = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            sums[parts[0]] = parts[1]
    return sums


# -- The Pi's folders ------------------------------------------------------------------

@dataclass
class PiRoot:
    """The Pi's install folders in `path`, seen at their real paths through `command()`."""

    path: Path
    # Folders the install writes, bound writable over the overlays (created empty here
    # when the package or the installer has not put anything there yet).
    WRITABLE = ("etc/mosquitto", "etc/edge-gateway", "etc/systemd/system",
                "opt/edge-gateway", "usr/local/bin", "var/lib/mosquitto",
                "var/log/mosquitto", "var/lib/edge-gateway")
    OVERLAID = ("etc", "opt", "usr/local", "var")
    gateway_uid: int = field(init=False, default=0)
    mosquitto_unit: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        for folder in self.WRITABLE:
            (self.path / folder).mkdir(parents=True, exist_ok=True)
        self._add_service_account()
        self._unpack_mosquitto()

    def real(self, path: str) -> Path:
        """Where the Pi path `path` (say /etc/mosquitto/passwd) is in this root."""
        return self.path / path.lstrip("/")

    def _add_service_account(self) -> None:
        """The `gateway` user and group, as `useradd --system --user-group` would add them."""
        used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
        uid = next(n for n in range(990, 900, -1) if n not in used)
        self.gateway_uid = uid
        etc = self.path / "etc"
        (etc / "passwd").write_text(Path("/etc/passwd").read_text()
                                    + f"gateway:x:{uid}:{uid}::/var/lib/edge-gateway:"
                                      "/usr/sbin/nologin\n")
        (etc / "group").write_text(Path("/etc/group").read_text() + f"gateway:x:{uid}:\n")

    def _unpack_mosquitto(self) -> None:
        """Debian's mosquitto files in /etc and /var, as installing the package leaves them."""
        with tempfile.TemporaryDirectory() as tmp:
            deb = mosquitto_deb(Path(tmp))
            unpacked = Path(tmp) / "x"
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            for name, md5 in conffile_md5s("mosquitto").items():
                if name.startswith("/etc/mosquitto/"):
                    got = hashlib.md5((unpacked / name.lstrip("/")).read_bytes()).hexdigest()
                    if got != md5:
                        raise RuntimeError(f"{name} in {deb} is not what dpkg recorded")
            shutil.copytree(unpacked / "etc/mosquitto", self.real("/etc/mosquitto"),
                            dirs_exist_ok=True)
            unit = next(p for p in (unpacked / "lib/systemd/system/mosquitto.service",
                                    unpacked / "usr/lib/systemd/system/mosquitto.service")
                        if p.exists())
            #: the package's systemd unit, mosquitto.service
            self.mosquitto_unit = unit.read_text()
        # The package's postinst: its state and log folders belong to its user.
        for folder in ("/var/lib/mosquitto", "/var/log/mosquitto"):
            shutil.chown(self.real(folder), "mosquitto")

    # -- running things in the Pi's view ---------------------------------------------------

    def mounts(self) -> list[str]:
        """Shell lines that show this root's folders at their real paths."""
        lines = [f"mount -t overlay overlay -o ro,lowerdir={shlex.quote(str(self.real(top)))}"
                 f":/{top} /{top}" for top in self.OVERLAID]
        lines += [f"mount --bind {shlex.quote(str(self.real(folder)))} /{folder}"
                  for folder in self.WRITABLE]
        return lines

    def command(self, argv: Sequence[str], *, netns: Netns | None = None,
                setup: Iterable[str] = (), user: str | None = None,
                env: Mapping[str, str] | None = None, cwd: str | None = None) -> list[str]:
        """argv run in the Pi's view: after `setup` (shell lines, as root), as `user`.

        The environment is only PATH, USER, LOGNAME and `env`, as `sudo` (secure_path) and
        systemd give a command: so `python3` is the system's, as on the Pi.
        """
        script = ["set -e", *self.mounts(), *setup]
        if cwd:
            script.append(f"cd {shlex.quote(cwd)}")
        run: list[str] = []
        if user is not None:
            run = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        who = user or "root"
        run += ["env", "-i", f"PATH={PATH}", f"USER={who}", f"LOGNAME={who}",
                *(f"{k}={v}" for k, v in (env or {}).items())]
        script.append('exec "$@"')
        prefix = ["ip", "netns", "exec", netns.name] if netns is not None else []
        return [*prefix, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", "\n".join(script), "sh", *run, *argv]

    def run(self, argv: Sequence[str], timeout: float = 300, input: str | None = None,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        """command(argv, **kwargs) run to its end, given `input`; output captured."""
        return _run(self.command(argv, **kwargs),  # type: ignore[arg-type]
                    timeout=timeout, input=input)

    def install(self, **env: str) -> subprocess.CompletedProcess[str]:
        """deploy/install.sh of this checkout, run in the Pi's view (no apt, no systemd)."""
        return self.run([str(INSTALL_SCRIPT)],
                        env={"GATEWAY_INSTALL_SKIP_SYSTEM": "1", **env})


# -- systemd, as far as a test goes ----------------------------------------------------

def unit_settings(*texts: str) -> dict[str, list[str]]:
    """The [Service] settings of a unit and its drop-ins, in order: key -> values."""
    settings: dict[str, list[str]] = {}
    for text in texts:
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@dataclass(frozen=True)
class Service:
    """What systemd would do to start a unit, as far as a test goes.

    Each command runs in the Pi's view with a fresh /run, as User= (root when unset),
    in WorkingDirectory=, with Environment= and, for LoadCredential=ID:PATH, a copy of
    PATH in $CREDENTIALS_DIRECTORY/ID that only that user may read.
    """

    settings: dict[str, list[str]]

    @classmethod
    def installed(cls, root: PiRoot, name: str = SERVICE) -> Service:
        """The unit in the root's /etc/systemd/system, with its drop-ins."""
        unit = root.real(f"/etc/systemd/system/{name}")
        dropins = sorted(root.real(f"/etc/systemd/system/{name}.d").glob("*.conf"))
        return cls(unit_settings(unit.read_text(), *(d.read_text() for d in dropins)))

    def one(self, key: str) -> str | None:
        values = self.settings.get(key)
        return values[-1] if values else None

    @property
    def credentials(self) -> list[tuple[str, str]]:
        """LoadCredential=ID:PATH pairs."""
        pairs = [v.split(":", 1) for v in self.settings.get("LoadCredential", [])]
        return [(name, source) for name, source in pairs]

    @property
    def environment(self) -> dict[str, str]:
        env = dict(kv.split("=", 1) for v in self.settings.get("Environment", [])
                   for kv in shlex.split(v))
        if self.credentials:
            env["CREDENTIALS_DIRECTORY"] = f"/run/credentials/{SERVICE}"
        return env

    def setup(self) -> list[str]:
        """Shell lines (as root) that give the command its /run and its credentials."""
        lines = ["mount -t tmpfs tmpfs /run"]
        if self.credentials:
            folder = f"/run/credentials/{SERVICE}"
            owner = self.one("User") or "root"
            lines.append(f"mkdir -p {folder}")
            lines += [f"cp {shlex.quote(source)} {folder}/{shlex.quote(name)}"
                      for name, source in self.credentials]
            lines += [f"chown -R {owner}: {folder}", f"chmod 0400 {folder}/*",
                      f"chmod 0500 {folder}"]
        return lines

    def command(self, root: PiRoot, exec_line: str, netns: Netns | None = None,
                before: Sequence[str] = ()) -> list[str]:
        """One ExecStart=/ExecStartPre= line as systemd would run it; `before`: shell
        lines run as root first, in the same namespaces."""
        return root.command(shlex.split(exec_line), netns=netns,
                            setup=[*self.setup(), *before], user=self.one("User"),
                            env=self.environment, cwd=self.one("WorkingDirectory"))


# -- The network namespace -------------------------------------------------------------

class Netns:
    """A network namespace with a veth pair: `host_address` here, `address` in there."""

    _made = itertools.count(1)

    def __init__(self) -> None:
        # Unique on this machine while it exists (other test runs may make theirs), and
        # short enough for an interface name (15 characters).
        tag = f"gwpi{os.getpid()}x{next(self._made)}"
        self.name = tag
        self._veth = f"{tag}h"
        taken = _run(["ip", "-4", "route", "show"]).stdout
        while True:
            net = ipaddress.ip_network(f"10.251.{random.randrange(256)}."
                                       f"{4 * random.randrange(64)}/30")
            if str(net.network_address) not in taken:
                break
        self.host_address, self.address = (str(a) for a in net.hosts())
        self._created = False

    def open(self) -> Netns:
        steps = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self._veth, "type", "veth", "peer", "name", f"{self.name}n"],
            ["ip", "link", "set", f"{self.name}n", "netns", self.name],
            ["ip", "addr", "add", f"{self.host_address}/30", "dev", self._veth],
            ["ip", "link", "set", self._veth, "up"],
            ["ip", "-n", self.name, "addr", "add", f"{self.address}/30", "dev",
             f"{self.name}n"],
            ["ip", "-n", self.name, "link", "set", f"{self.name}n", "up"],
            ["ip", "-n", self.name, "link", "set", "lo", "up"],
        ]
        self._created = True
        atexit.register(self.close)  # a test run that ends early still removes it
        for step in steps:
            done = _run(step)
            if done.returncode != 0:
                self.close()
                raise RuntimeError(f"{' '.join(step)}: {done.stderr.strip()}")
        return self

    def close(self) -> None:
        """Remove the veth pair and the namespace (safe to call twice)."""
        if self._created:
            _run(["ip", "link", "del", self._veth])
            _run(["ip", "netns", "del", self.name])
            self._created = False

    def __enter__(self) -> Netns:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class InView(ManagedProcess):
    """A long-running program of the Pi's view (argv from PiRoot.command / Service.command)."""

    def __init__(self, name: str, workdir: Path, argv: list[str], host: str, port: int,
                 ready: Callable[[], bool] | None = None) -> None:
        super().__init__(workdir, port, host)
        self.name = name
        self.argv = argv
        self._ready = ready

    def command(self) -> list[str]:
        return self.argv

    def is_ready(self) -> bool:
        return self._ready() if self._ready is not None else super().is_ready()

