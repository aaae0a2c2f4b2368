"""VM size figures against Microsoft's published size tables (Microsoft Learn, sizes/*-series)."""

import pytest

from policies.rules.vm_sizes import lookup_vm_size

# name, vCPUs, GiB, GPUs, GPU model, FPGAs
PUBLISHED = [
    ("Standard_D3_v2", 4, 14, 0, None, 0),           # Azure ML v1's default node size
    ("Standard_D1_v2", 1, 3.5, 0, None, 0),
    ("Standard_D15_v2", 20, 140, 0, None, 0),
    ("Standard_DS12_v2", 4, 28, 0, None, 0),
    ("Standard_DS11-1_v2", 1, 14, 0, None, 0),
    ("Standard_D2s_v3", 2, 8, 0, None, 0),
    ("Standard_D64_v3", 64, 256, 0, None, 0),
    ("Standard_D96as_v4", 96, 384, 0, None, 0),
    ("Standard_D8ds_v4", 8, 32, 0, None, 0),
    ("Standard_D4s_v5", 4, 16, 0, None, 0),
    ("Standard_D96ads_v5", 96, 384, 0, None, 0),
    ("Standard_D16ls_v5", 16, 32, 0, None, 0),
    ("Standard_E2s_v3", 2, 16, 0, None, 0),
    ("Standard_E64_v3", 64, 432, 0, None, 0),        # breaks the 8 GiB/vCPU ratio
    ("Standard_E4-2s_v3", 2, 32, 0, None, 0),        # constrained: 2 of 4 cores active
    ("Standard_E64_v4", 64, 504, 0, None, 0),        # breaks the ratio
    ("Standard_E64a_v4", 64, 512, 0, None, 0),       # the AMD one does not
    ("Standard_E96as_v4", 96, 672, 0, None, 0),
    ("Standard_E80ids_v4", 80, 504, 0, None, 0),
    ("Standard_E8s_v5", 8, 64, 0, None, 0),
    ("Standard_E20_v5", 20, 160, 0, None, 0),
    ("Standard_E96ds_v5", 96, 672, 0, None, 0),
    ("Standard_E104is_v5", 104, 672, 0, None, 0),
    ("Standard_E112iads_v5", 112, 672, 0, None, 0),
    ("Standard_F4s_v2", 4, 8, 0, None, 0),
    ("Standard_F72s_v2", 72, 144, 0, None, 0),
    ("Standard_B1s", 1, 1, 0, None, 0),
    ("Standard_B1ls", 1, 0.5, 0, None, 0),
    ("Standard_B2s", 2, 4, 0, None, 0),
    ("Standard_B20ms", 20, 80, 0, None, 0),
    ("Standard_B2ts_v2", 2, 1, 0, None, 0),
    ("Standard_B8als_v2", 8, 16, 0, None, 0),
    ("Standard_B32s_v2", 32, 128, 0, None, 0),
    ("Standard_NC6", 6, 56, 1, "K80", 0),
    ("Standard_NC24r", 24, 224, 4, "K80", 0),
    ("Standard_NC12s_v2", 12, 224, 2, "P100", 0),
    ("Standard_NC6s_v3", 6, 112, 1, "V100", 0),
    ("Standard_NC24rs_v3", 24, 448, 4, "V100", 0),
    ("Standard_NC4as_T4_v3", 4, 28, 1, "T4", 0),
    ("Standard_NC16as_T4_v3", 16, 110, 1, "T4", 0),
    ("Standard_NC64as_T4_v3", 64, 440, 4, "T4", 0),
    ("Standard_NC24ads_A100_v4", 24, 220, 1, "A100", 0),
    ("Standard_NC96ads_A100_v4", 96, 880, 4, "A100", 0),
    ("Standard_NC40ads_H100_v5", 40, 320, 1, "H100", 0),
    ("Standard_ND6s", 6, 112, 1, "P40", 0),
    ("Standard_ND40rs_v2", 40, 672, 8, "V100", 0),
    ("Standard_ND96asr_v4", 96, 900, 8, "A100", 0),
    ("Standard_ND96isr_H100_v5", 96, 1900, 8, "H100", 0),
    ("Standard_NV6", 6, 56, 1, "M60", 0),
    ("Standard_NV48s_v3", 48, 448, 4, "M60", 0),
    ("Standard_NV72ads_A10_v5", 72, 880, 2, "A10", 0),
    ("Standard_NP10s", 10, 168, 0, None, 1),
    ("Standard_NP40s", 40, 672, 0, None, 4),
    ("Standard_PB6s", 6, 112, 0, None, 1),           # Azure ML v1's FPGA size
]


@pytest.mark.parametrize("name, vcpus, memory, gpus, gpu_model, fpgas", PUBLISHED)
def test_published_figures(name, vcpus, memory, gpus, gpu_model, fpgas):
    size = lookup_vm_size(name)
    assert size is not None, name
    assert (size.name, size.vcpus, size.memory_gib, size.gpus, size.gpu_model, size.fpgas) == (
        name, vcpus, memory, gpus, gpu_model, fpgas)


@pytest.mark.parametrize("spelling", ["standard_d4s_v5", "STANDARD_D4S_V5", "Standard_d4S_V5"])
def test_lookup_is_case_insensitive_and_returns_the_canonical_name(spelling):
    size = lookup_vm_size(spelling)
    assert size is not None and size.name == "Standard_D4s_v5" and size.vcpus == 4


def test_table_sizes_are_case_insensitive_too():
    assert lookup_vm_size("standard_nc6S_V3").name == "Standard_NC6s_v3"
    assert lookup_vm_size("STANDARD_E8-2S_V3").name == "Standard_E8-2s_v3"


def test_families():
    assert lookup_vm_size("Standard_D4s_v5").family == "Dsv5"
    assert lookup_vm_size("Standard_NC4as_T4_v3").family == "NCasT4_v3"
    assert lookup_vm_size("Standard_D3_v2").family == "Dv2"


@pytest.mark.parametrize("name", [
    "Standard_Q4_v9",             # no such series
    "D4s_v5",                     # the "Standard_" prefix is required
    "Basic_A1",
    "Standard_D3_v5",             # the grammar parses it, but Dv5 has no 3-vCPU size
    "Standard_D20_v5",
    "Standard_D4x_v5",            # unknown feature letter
    "Standard_D4ps_v5",           # Arm64 sizes are deliberately not parsed
    "Standard_D4s_v6",            # a series whose ratio is not in the table
    "Standard_E4-1s_v3",          # no constrained size keeps a single core
    "Standard_E20-10s_v3",
    "Standard_D4-2s_v5",          # D series have no constrained sizes
    "Standard_NV6ads_A10_v5",     # a sixth of a GPU: no whole count describes it
    "Standard_D4s_v5 ",
    "",
    None,
])
def test_unknown_names_give_none(name):
    assert lookup_vm_size(name) is None
