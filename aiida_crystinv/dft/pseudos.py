"""An aiida-pseudo family with recommended cutoffs from UPF files, for protocol builders.

aiida-quantumespresso's ``get_builder_from_protocol`` takes its pseudopotentials and, unless
the overrides give both, its cutoffs from a pseudopotential family that *recommends*
cutoffs (aiida-pseudo's ``RecommendedCutoffMixin``). The published families (SSSP,
PseudoDojo) are downloaded by ``aiida-pseudo install``; offline, :func:`create_pseudo_family`
makes a ``CutoffsPseudoPotentialFamily`` (``pseudo.family.cutoffs``) from local UPF files,
for example those the Debian package ``quantum-espresso-data`` ships in
``/usr/share/espresso/pseudo``.

Cutoffs (Ry, stringency ``normal``, the family's default): ``ecutwfc``/``ecutrho`` when given
(for every element), else the values the UPF header suggests (``wfc_cutoff``/``rho_cutoff``
of UPF v2, the "Suggested cutoff" line of UPF v1). Without ``ecutrho`` the charge-density
cutoff is 4 x ``ecutwfc`` for norm-conserving and 8 x for ultrasoft/PAW pseudopotentials.
Everything is checked before anything is stored: one file per element, every element with
cutoffs, a label that is free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["UpfInfo", "read_upf_info", "collect_upf_files", "plan_family", "create_pseudo_family", "PseudoFamilyError"]

STRINGENCY = "normal"


class PseudoFamilyError(ValueError):
    """A file, an element or a cutoff that does not allow the family (nothing stored)."""


@dataclass(frozen=True)
class UpfInfo:
    path: Path
    element: str
    pseudo_type: str  # 'NC', 'US', 'PAW' (or what the header says)
    wfc_cutoff: float | None  # Ry, None when the header suggests none
    rho_cutoff: float | None


_ATTR = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def _float(text: str | None) -> float | None:
    try:
        value = float(str(text).replace("D", "E").replace("d", "e"))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def read_upf_info(path: str | Path) -> UpfInfo:
    """Element, pseudopotential type and suggested cutoffs from a UPF file's header.

    Raises:
        PseudoFamilyError: not a UPF file (no header, no element).
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")[:200_000]
    except OSError as exc:
        raise PseudoFamilyError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    match = re.search(r"<PP_HEADER\b([^>]*)/?>", text)
    if match and "element" in match.group(1):  # UPF v2: attributes
        attrs = dict(_ATTR.findall(match.group(1)))
        element = attrs.get("element", "").strip()
        kind = attrs.get("pseudo_type", "").strip().upper()
        wfc, rho = _float(attrs.get("wfc_cutoff")), _float(attrs.get("rho_cutoff"))
    elif match:  # UPF v1: one value per line, described by a comment
        body = text[match.end(): text.find("</PP_HEADER>", match.end())]
        element, kind, wfc, rho = "", "", None, None
        for line in body.splitlines():
            words = line.split()
            low = line.lower()
            if "element" in low and words:
                element = words[0]
            elif ("us" in low or "nc" in low or "paw" in low) and "pseudopotential" in low and words:
                kind = words[0].upper()
            elif "suggested cutoff" in low and len(words) >= 2:
                wfc, rho = _float(words[0]), _float(words[1])
    else:
        raise PseudoFamilyError(f"{path.name}: not a UPF file (no PP_HEADER)")
    element = element.capitalize()
    if not re.fullmatch(r"[A-Z][a-z]?", element):
        raise PseudoFamilyError(f"{path.name}: the header names no element")
    kind = {"SL": "NC", "USPP": "US"}.get(kind, kind)
    return UpfInfo(path, element, kind, wfc, rho)


def collect_upf_files(paths: Sequence[str | Path]) -> list[Path]:
    """The UPF files named, folders expanded to their ``*.UPF``/``*.upf`` files."""
    files: list[Path] = []
    for item in paths:
        p = Path(item).expanduser().resolve()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".upf")
            if not found:
                raise PseudoFamilyError(f"{p}: no .UPF file in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise PseudoFamilyError(f"{item}: no such file or folder")
    return files


def plan_family(paths: Sequence[str | Path], ecutwfc: float | None = None, ecutrho: float | None = None) -> tuple[list[UpfInfo], dict[str, dict[str, float]]]:
    """The UPF files (one per element) and their cutoffs in Ry, checked; nothing stored.

    Raises:
        PseudoFamilyError: two files for one element (both named), an element whose file
            suggests no cutoff while none was given, a non-positive cutoff.
    """
    for name, value in (("ecutwfc", ecutwfc), ("ecutrho", ecutrho)):
        if value is not None and not (value > 0 and value < 1e5):
            raise PseudoFamilyError(f"{name} must be a positive number of Ry, got {value}")
    if ecutrho is not None and ecutwfc is None:
        raise PseudoFamilyError("ecutrho was given without ecutwfc")
    if ecutwfc is not None and ecutrho is not None and ecutrho < ecutwfc:
        raise PseudoFamilyError(f"ecutrho ({ecutrho} Ry) is below ecutwfc ({ecutwfc} Ry)")
    infos = [read_upf_info(f) for f in collect_upf_files(paths)]
    if not infos:
        raise PseudoFamilyError("no UPF file given")
    by_element: dict[str, UpfInfo] = {}
    for info in infos:
        if info.element in by_element:
            raise PseudoFamilyError(
                f"two files for {info.element}: {by_element[info.element].path.name} and {info.path.name}; "
                "name one file per element"
            )
        by_element[info.element] = info
    cutoffs: dict[str, dict[str, float]] = {}
    for element, info in sorted(by_element.items()):
        if ecutwfc is not None:
            wfc = ecutwfc
            rho = ecutrho if ecutrho is not None else ecutwfc * (4 if info.pseudo_type == "NC" else 8)
        elif info.wfc_cutoff is not None:
            wfc = info.wfc_cutoff
            rho = info.rho_cutoff or wfc * (4 if info.pseudo_type == "NC" else 8)
        else:
            raise PseudoFamilyError(
                f"{info.path.name} ({element}) suggests no cutoff in its header: give the cutoffs (--ecutwfc, --ecutrho)"
            )
        cutoffs[element] = {"cutoff_wfc": float(wfc), "cutoff_rho": float(rho)}
    return list(by_element.values()), cutoffs


def create_pseudo_family(label: str, paths: Sequence[str | Path], ecutwfc: float | None = None,
                         ecutrho: float | None = None, description: str = "") -> Any:
    """A stored ``CutoffsPseudoPotentialFamily`` (aiida-pseudo) named ``label``.

    Raises:
        PseudoFamilyError: see :func:`plan_family`; a label already taken.
        ImportError: aiida-pseudo is not installed (``pip install aiida-pseudo``).
    """
    from aiida import orm
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import CutoffsPseudoPotentialFamily

    if not label or not label.strip():
        raise PseudoFamilyError("the family needs a label")
    if orm.QueryBuilder().append(orm.Group, filters={"label": label}).count():
        raise PseudoFamilyError(f"a group labelled {label!r} exists already; choose another label")
    infos, cutoffs = plan_family(paths, ecutwfc, ecutrho)
    pseudos = []
    for info in infos:
        try:
            with info.path.open("rb") as handle:
                pseudos.append(UpfData(handle, filename=info.path.name))
        except Exception as exc:  # noqa: BLE001 - aiida-pseudo's parser: name the file
            raise PseudoFamilyError(f"{info.path.name}: aiida-pseudo cannot read it ({exc})") from None
        if pseudos[-1].element != info.element:
            raise PseudoFamilyError(f"{info.path.name}: the header says {info.element}, aiida-pseudo reads {pseudos[-1].element}")
    text = description or "from " + ", ".join(str(i.path) for i in infos) + " (aiida-crystinv pseudo-family)"
    family = CutoffsPseudoPotentialFamily(label=label, description=text).store()
    try:
        family.add_nodes([p.store() for p in pseudos])
        family.set_cutoffs(cutoffs, STRINGENCY, unit="Ry")
        family.set_default_stringency(STRINGENCY)
    except Exception:
        orm.Group.collection.delete(family.pk)
        raise
    return family
