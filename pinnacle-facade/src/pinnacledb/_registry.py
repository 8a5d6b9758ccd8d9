"""Which installed package provides a store for a URI scheme, read from entry points.

Entry points are listed (cheap, nothing imported) when a :class:`StoreRegistry` is built; the
package that owns a scheme is imported only when a store of that scheme is first used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Literal

from pinnacledb._schemes import install_hints

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from pinnacle_protocols.protocols import StoreFactory

__all__ = ["GROUPS", "INSTALL_HINTS", "ROLE_NAMES", "Role", "StoreEntry", "StoreRegistry"]

Role = Literal["databackend", "metadata", "artifact_store", "compute"]

#: Entry point group of each role.
GROUPS: Final[Mapping[Role, str]] = {
    "databackend": "pinnacle.databackends",
    "metadata": "pinnacle.metadata_stores",
    "artifact_store": "pinnacle.artifact_stores",
    "compute": "pinnacle.compute",
}
#: How a role is named in messages.
ROLE_NAMES: Final[Mapping[Role, str]] = {
    "databackend": "databackend",
    "metadata": "metadata store",
    "artifact_store": "artifact store",
    "compute": "compute backend",
}

#: Static hints: which distribution to install for a scheme, per role (from the scheme facts).
INSTALL_HINTS: Final[Mapping[Role, Mapping[str, str]]] = {
    role: install_hints(role) for role in ("databackend", "metadata", "artifact_store", "compute")
}


class StoreEntry:
    """One entry point: a distribution's claim on a scheme for a role.

    The distribution's name and version are read (which parses its METADATA) only when asked
    for, so building a registry stays cheap.
    """

    def __init__(self, role: Role, entry_point: EntryPoint) -> None:
        """Wrap ``entry_point`` of group ``GROUPS[role]``."""
        self.role: Role = role
        self.entry_point = entry_point
        self.scheme = entry_point.name.lower()
        self.value: str = entry_point.value

    @property
    def distribution(self) -> str:
        """Name of the distribution that declares the entry point."""
        dist = self.entry_point.dist
        return dist.name if dist is not None else "<unknown distribution>"

    @property
    def version(self) -> str:
        """Version of that distribution."""
        dist = self.entry_point.dist
        return dist.version if dist is not None else "?"

    @property
    def dist_key(self) -> str:
        """The distribution's normalized name, without parsing its METADATA."""
        dist = self.entry_point.dist
        if dist is None:
            return "<unknown distribution>"
        name = getattr(dist, "_normalized_name", None)
        return str(name) if name else dist.name

    def __repr__(self) -> str:
        return f"StoreEntry({self.role}, {self.scheme!r} = {self.value!r})"

    @property
    def class_path(self) -> str:
        """``module.Class`` of the factory (``module:Class.from_uri`` -> ``module.Class``)."""
        module, _, attr = self.value.partition(":")
        return f"{module}.{attr.split('.')[0]}" if attr else module

    def load(self) -> StoreFactory:
        """Import the owning package and return the factory (``(uri, **options) -> store``)."""
        from pinnacle_protocols.errors import ConfigError

        try:
            factory = self.entry_point.load()
        except Exception as exc:
            raise ConfigError(
                f"cannot load the {ROLE_NAMES[self.role]} for {self.scheme}:// from "
                f"{self.distribution} {self.version} ({self.value}): {type(exc).__name__}: {exc}. "
                f"Reinstall it: pip install --force-reinstall {self.distribution}"
            ) from exc
        if not callable(factory):
            raise ConfigError(
                f"entry point {self.scheme} = {self.value!r} of {self.distribution} "
                f"(group {GROUPS[self.role]}) is not callable"
            )
        return factory  # type: ignore[no-any-return]


class StoreRegistry:
    """Scheme -> store factory for each role, from the installed distributions' entry points."""

    def __init__(self, entries: Mapping[Role, Mapping[str, list[StoreEntry]]]) -> None:
        """Build from already listed entries; use :meth:`from_entry_points` normally."""
        self._entries = {role: dict(entries.get(role, {})) for role in GROUPS}

    @classmethod
    def from_entry_points(cls) -> StoreRegistry:
        """List the entry points of every installed distribution (imports none of them)."""
        from importlib.metadata import entry_points

        entries: dict[Role, dict[str, list[StoreEntry]]] = {role: {} for role in GROUPS}
        everything = entry_points()  # one pass over the installed distributions
        for role, group in GROUPS.items():
            for ep in everything.select(group=group):
                entries[role].setdefault(ep.name.lower(), []).append(StoreEntry(role, ep))
        return cls(entries)

    def schemes(self, role: Role) -> list[str]:
        """Every scheme some installed package provides for ``role``, sorted."""
        return sorted(self._entries[role])

    def has(self, role: Role, scheme: str) -> bool:
        """Whether some installed package provides ``scheme`` for ``role``."""
        return scheme.lower() in self._entries[role]

    def entry(self, role: Role, scheme: str, *, shown_uri: str | None = None) -> StoreEntry:
        """The single entry for ``scheme``.

        Raises:
            UnknownSchemeError: no package provides it (the message lists known schemes and
                the package to install).
            SchemeConflictError: two distributions claim it.
        """
        from pinnacle_protocols.errors import SchemeConflictError, UnknownSchemeError

        scheme = scheme.lower()
        claims = self._entries[role].get(scheme, [])
        if not claims:
            where = f" (URI {shown_uri})" if shown_uri else ""
            known = ", ".join(f"{s}://" for s in self.schemes(role)) or "none"
            hint = INSTALL_HINTS[role].get(scheme)
            fix = (
                f"`{scheme}://` needs `pip install {hint}`."
                if hint
                else f"Install a package that registers {scheme!r} in the entry point group "
                f"{GROUPS[role]!r}."
            )
            guess = "" if hint else self._did_you_mean(role, scheme)
            if guess:
                fix = "If not, i" + fix[1:]
            raise UnknownSchemeError(
                f"no {ROLE_NAMES[role]} is installed for scheme {scheme!r}{where}. {guess}"
                f"Installed {ROLE_NAMES[role]} schemes: {known}. {fix}"
            )
        if len({c.dist_key for c in claims}) > 1:
            distributions = sorted({c.distribution for c in claims})
            listed = "; ".join(f"{c.distribution} {c.version} ({c.value})" for c in claims)
            raise SchemeConflictError(
                f"scheme {scheme!r} is claimed by {len(distributions)} installed distributions "
                f"for the {ROLE_NAMES[role]} role (entry point group {GROUPS[role]}): {listed}. "
                f"Uninstall all but one of {', '.join(distributions)}."
            )
        return claims[0]

    def _did_you_mean(self, role: Role, scheme: str) -> str:
        """``Did you mean `postgres://`? `` for a misspelt scheme (installed or known), else ""."""
        from difflib import get_close_matches

        candidates = sorted({*self.schemes(role), *INSTALL_HINTS[role]})
        base = scheme.partition("+")[0]  # postgres+psycopg: a driver suffix is not needed
        close = [base] if base in candidates else get_close_matches(scheme, candidates, 1, 0.75)
        if not close:
            return ""
        installed = (
            "" if self.has(role, close[0]) else f" (`pip install {INSTALL_HINTS[role][close[0]]}`)"
        )
        return f"Did you mean `{close[0]}://`{installed}? "
