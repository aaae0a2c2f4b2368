"""Azure VM sizes that AKS users pick: vCPUs, memory and accelerators per node.

Two sources, both from Microsoft's published size tables (Microsoft Learn, checked 2026-11):
- modern sizes `Standard_<family letter><vCPUs><features>_v<n>` are parsed: the vCPU count is in the name
  and memory is a per-series GiB-per-vCPU ratio, with the few sizes that break the ratio listed explicitly;
- legacy and irregular names (Dv2/DSv2, B-series v1, GPU and FPGA sizes) come from an explicit table.
A name neither source knows gives None rather than a guess; the caller then asks for vcpusPerNode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class VmSize:
    name: str  # canonical spelling, e.g. "Standard_D4s_v5"
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str | None = None
    fpgas: int = 0  # NP-series: Xilinx Alveo U250; PB6s: Intel Arria 10
    family: str = ""


# ---- parsed series -------------------------------------------------------------------------------------
# (letter, features, version) -> (GiB per vCPU, vCPU counts the series offers, {vCPUs: GiB} exceptions).
# Listing the offered counts keeps "Standard_D3_v5" (no such size) from parsing.
_Series = tuple[float, tuple[int, ...], dict[int, float]]
_SERIES: dict[tuple[str, str, int], _Series] = {}


def _series(letter: str, version: int, features: list[str], gib_per_vcpu: float, counts: tuple[int, ...],
            exceptions: dict[int, float] | None = None) -> None:
    for feature in features:
        _SERIES[(letter, feature, version)] = (gib_per_vcpu, counts, exceptions or {})


_D3 = (2, 4, 8, 16, 32, 48, 64)
_D96 = (2, 4, 8, 16, 32, 48, 64, 96)
_E3 = (2, 4, 8, 16, 20, 32, 48, 64)
_E96 = (2, 4, 8, 16, 20, 32, 48, 64, 96)
_B2 = (2, 4, 8, 16, 32)

_series("D", 3, ["", "s"], 4, _D3)                                      # Dv3, Dsv3
_series("D", 4, ["", "s", "d", "ds"], 4, _D3)                           # Dv4, Dsv4, Ddv4, Ddsv4
_series("D", 4, ["a", "as"], 4, _D96)                                   # Dav4, Dasv4
_series("D", 5, ["", "s", "d", "ds", "as", "ads"], 4, _D96)             # Dv5 .. Dadsv5
_series("D", 5, ["ls", "lds"], 2, _D96)                                 # Dlsv5, Dldsv5 ("l" = low memory)
_series("E", 3, ["", "s"], 8, _E3, {64: 432})                           # Ev3, Esv3: the 64-vCPU size has 432
_series("E", 3, ["i", "is"], 8, (64,), {64: 432})                       # isolated E64i(s)_v3
_series("E", 4, ["", "s", "d", "ds"], 8, _E3, {64: 504})                # Ev4 .. Edsv4: the 64-vCPU size has 504
_series("E", 4, ["is", "ids"], 8, (80,), {80: 504})                     # isolated E80i(d)s_v4
_series("E", 4, ["a", "as"], 8, _E96, {96: 672})                        # Eav4, Easv4
_series("E", 5, ["", "s", "d", "ds", "as", "ads"], 8, _E96, {96: 672})  # Ev5 .. Eadsv5
_series("E", 5, ["i", "is", "id", "ids"], 8, (104,), {104: 672})        # isolated E104i*_v5
_series("E", 5, ["ias", "iads"], 8, (112,), {112: 672})                 # isolated E112ia(d)s_v5
_series("F", 2, ["s"], 2, (2, 4, 8, 16, 32, 48, 64, 72))                # Fsv2
_series("B", 2, ["s", "as"], 4, _B2)                                    # Bsv2, Basv2
_series("B", 2, ["ls", "als"], 2, _B2)                                  # low-memory Bsv2, Basv2
_series("B", 2, ["ts", "ats"], 0.5, (2,))                               # B2ts_v2, B2ats_v2: 1 GiB
# Not parsed on purpose: Arm64 ("p") sizes (they need arm64 images) and the v6+ series (not checked yet).

_MODERN = re.compile(r"standard_([a-z])(\d+)([a-z]*)_v(\d+)")
# Constrained-vCPU sizes (Standard_E8-2s_v3): same memory, fewer active vCPUs; Kubernetes sees the active ones.
# The E series offer half or a quarter of 4..96 cores, never fewer than 2 (E4-2s, E8-2s, E96-24as);
# the DSv2 ones (DS11-1_v2 ...) are in the table below.
_CONSTRAINED = re.compile(r"standard_e(\d+)-(\d+)([a-z]*_v\d+)")
_CONSTRAINED_FAMILIES = {"Esv3", "Esv4", "Edsv4", "Easv4", "Esv5", "Edsv5", "Easv5", "Eadsv5"}


def _parse_modern(lowered: str) -> VmSize | None:
    match = _MODERN.fullmatch(lowered)
    if not match:
        return None
    letter, count, features, version = match[1].upper(), int(match[2]), match[3], int(match[4])
    series = _SERIES.get((letter, features, version))
    if series is None or count not in series[1]:
        return None
    gib_per_vcpu, _, exceptions = series
    return VmSize(name=f"Standard_{letter}{count}{features}_v{version}", vcpus=count,
                  memory_gib=float(exceptions.get(count, gib_per_vcpu * count)),
                  family=f"{letter}{features}v{version}")


# ---- explicit table -------------------------------------------------------------------------------------
_TABLE: dict[str, VmSize] = {}


def _add(family: str, rows: list[tuple], gpu_model: str | None = None, fpga: bool = False) -> None:
    """rows: (size without "Standard_", vCPUs, GiB[, accelerators per VM])."""
    for short, vcpus, memory, *accelerators in rows:
        count = accelerators[0] if accelerators else 0
        _TABLE["standard_" + short.lower()] = VmSize(
            name="Standard_" + short, vcpus=vcpus, memory_gib=float(memory),
            gpus=0 if fpga else count, gpu_model=gpu_model if count and not fpga else None,
            fpgas=count if fpga else 0, family=family)


_DV2 = [("1", 1, 3.5), ("2", 2, 7), ("3", 4, 14), ("4", 8, 28), ("5", 16, 56),
        ("11", 2, 14), ("12", 4, 28), ("13", 8, 56), ("14", 16, 112), ("15", 20, 140)]
_add("Dv2", [(f"D{n}_v2", v, m) for n, v, m in _DV2])
_add("DSv2", [(f"DS{n}_v2", v, m) for n, v, m in _DV2])
_add("DSv2", [("DS11-1_v2", 1, 14), ("DS12-1_v2", 1, 28), ("DS12-2_v2", 2, 28), ("DS13-2_v2", 2, 56),
              ("DS13-4_v2", 4, 56), ("DS14-4_v2", 4, 112), ("DS14-8_v2", 8, 112)])  # constrained vCPU
_add("B", [("B1ls", 1, 0.5), ("B1s", 1, 1), ("B1ms", 1, 2), ("B2s", 2, 4), ("B2ms", 2, 8), ("B4ms", 4, 16),
           ("B8ms", 8, 32), ("B12ms", 12, 48), ("B16ms", 16, 64), ("B20ms", 20, 80)])

# GPU counts are whole GPUs as Kubernetes schedules them (nvidia.com/gpu); an NC6 "GPU" is half a K80 card.
_add("NC", [("NC6", 6, 56, 1), ("NC12", 12, 112, 2), ("NC24", 24, 224, 4), ("NC24r", 24, 224, 4)], "K80")
_add("NCv2", [("NC6s_v2", 6, 112, 1), ("NC12s_v2", 12, 224, 2), ("NC24s_v2", 24, 448, 4),
              ("NC24rs_v2", 24, 448, 4)], "P100")
_add("NCv3", [("NC6s_v3", 6, 112, 1), ("NC12s_v3", 12, 224, 2), ("NC24s_v3", 24, 448, 4),
              ("NC24rs_v3", 24, 448, 4)], "V100")
_add("NCasT4_v3", [("NC4as_T4_v3", 4, 28, 1), ("NC8as_T4_v3", 8, 56, 1), ("NC16as_T4_v3", 16, 110, 1),
                   ("NC64as_T4_v3", 64, 440, 4)], "T4")
_add("NCadsA100_v4", [("NC24ads_A100_v4", 24, 220, 1), ("NC48ads_A100_v4", 48, 440, 2),
                      ("NC96ads_A100_v4", 96, 880, 4)], "A100")
_add("NCadsH100_v5", [("NC40ads_H100_v5", 40, 320, 1), ("NC80adis_H100_v5", 80, 640, 2)], "H100")
_add("ND", [("ND6s", 6, 112, 1), ("ND12s", 12, 224, 2), ("ND24s", 24, 448, 4), ("ND24rs", 24, 448, 4)], "P40")
_add("NDv2", [("ND40rs_v2", 40, 672, 8)], "V100")
_add("NDasrA100_v4", [("ND96asr_v4", 96, 900, 8)], "A100")
_add("NDisrH100_v5", [("ND96isr_H100_v5", 96, 1900, 8)], "H100")
_add("NV", [("NV6", 6, 56, 1), ("NV12", 12, 112, 2), ("NV24", 24, 224, 4)], "M60")
_add("NVv3", [("NV12s_v3", 12, 112, 1), ("NV24s_v3", 24, 224, 2), ("NV48s_v3", 48, 448, 4)], "M60")
# NVadsA10_v5: only the whole-GPU sizes; NV6/12/18ads get 1/6 .. 1/2 of an A10, which no whole count describes.
_add("NVadsA10_v5", [("NV36ads_A10_v5", 36, 440, 1), ("NV36adms_A10_v5", 36, 880, 1),
                     ("NV72ads_A10_v5", 72, 880, 2)], "A10")
_add("NP", [("NP10s", 10, 168, 1), ("NP20s", 20, 336, 2), ("NP40s", 40, 672, 4)], fpga=True)
_add("PB", [("PB6s", 6, 112, 1)], fpga=True)  # Azure ML v1's Hardware Accelerated Models size


def lookup_vm_size(name: str) -> VmSize | None:
    """The size's figures, case-insensitively; None for names without "Standard_" or not known here."""
    if not isinstance(name, str):
        return None
    lowered = name.lower()
    if not lowered.startswith("standard_"):
        return None
    known = _TABLE.get(lowered) or _parse_modern(lowered)
    if known is not None:
        return known
    match = _CONSTRAINED.fullmatch(lowered)
    if not match:
        return None
    cores, active = int(match[1]), int(match[2])
    base = _parse_modern(f"standard_e{cores}{match[3]}")
    if (base is None or base.family not in _CONSTRAINED_FAMILIES or cores not in (4, 8, 16, 32, 64, 96)
            or active < 2 or cores not in (2 * active, 4 * active)):
        return None
    return replace(base, name=f"Standard_E{cores}-{active}{match[3]}", vcpus=active)
