"""Where the CLI finds the server and the credentials: options, then the environment, then the config file."""

from __future__ import annotations

import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click

from wsexec.cli.outcome import CLIENT_ERROR

FILE_NAME = "config.toml"
KEYS = ("url", "user", "password", "token")
DEFAULT_URL = "http://127.0.0.1:5000"


class ConfigError(click.ClickException):
    """A config file that cannot be used, or credentials that are missing."""

    exit_code = CLIENT_ERROR


@dataclass(frozen=True)
class Credentials:
    url: str
    user: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never a secret in a traceback or a log line
        return f"Credentials(url={self.url!r}, user={self.user!r})"


def config_path() -> Path:
    """config.toml under the user's config dir ($XDG_CONFIG_HOME/wsexec, ~/.config/wsexec by default)."""
    return Path(click.get_app_dir("wsexec")) / FILE_NAME


def read_file(path: Path) -> dict[str, str]:
    """The file's url/user/password/token; refused if anyone but its owner may read it (it holds secrets)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): it holds credentials, "
                          f"so wsexec will not use it; run: chmod 600 {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = set(data) - set(KEYS)
    if unknown or not all(isinstance(value, str) for value in data.values()):
        raise ConfigError(f"{path}: expected string values for {', '.join(KEYS)} only")
    return data


def write_file(path: Path, values: dict[str, str]) -> None:
    """Save the given keys with mode 600 (created so: never readable by others, not even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "".join(f"{key} = {toml_string(value)}\n" for key, value in values.items() if value)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def resolve(url: str | None, user: str | None, password: str | None, token: str | None,
            interactive: bool) -> Credentials:
    """Options and environment (given, via click) win over the file; a password is prompted for on a TTY."""
    saved = read_file(config_path())
    if user is None and token is None:
        user, token = saved.get("user"), saved.get("token")
        password = password or (saved.get("password") if user == saved.get("user") else None)
    elif user is not None and user == saved.get("user"):
        password = password or saved.get("password")
    url = (url or saved.get("url") or DEFAULT_URL).rstrip("/")
    if url.endswith("/wsexec"):  # the README's $WSEXEC works too
        url = url[: -len("/wsexec")]
    if token:
        return Credentials(url, token=token)
    if user and not password:
        if not interactive:
            raise ConfigError(f"no password for {user}: set WSEXEC_PASSWORD, or run wsexec on a terminal to be asked")
        password = click.prompt(f"password for {user} at {url}", hide_input=True, err=True)
    return Credentials(url, user, password)
