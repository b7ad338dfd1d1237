"""The wheel bundle that brings vLLM to the GPU machine (harness/bench/vllm_wheels.py): the fatbin
pruning touches only foreign machine code, the slimmed wheel is a valid wheel pip installs, and a
bundle split into parts installs only once every part has arrived intact, in two calls as on the
device."""
import base64
import csv
import hashlib
import io
import random
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from m1bench.harness.bench import vllm_wheels as vw


def fatbin(entries: list[tuple[int, int, bytes]]) -> bytes:
    """A CUDA fatbin: header, then (kind, sm, payload) entries with 64-byte headers."""
    body = b""
    for kind, sm, payload in entries:
        header = struct.pack("<HHIQ", kind, 1, 64, len(payload)) + bytes(12) + struct.pack("<I", sm)  # sm at +28
        body += header + bytes(64 - len(header)) + payload
    return struct.pack("<IHHQ", vw.FATBIN_MAGIC, 1, 16, len(body)) + body


def test_only_foreign_sass_is_zeroed():
    sm80, sm90, ptx = b"\x11" * 100, b"\x22" * 60, b"\x33" * 40
    lib = b"ELF-head" + fatbin([(2, 80, sm80), (2, 90, sm90), (1, 80, ptx)]) + b"host code"
    # a magic number inside host code that is no fatbin is left alone
    lib += struct.pack("<IHHQ", vw.FATBIN_MAGIC, 7, 16, 5) + b"tail"
    blob = bytearray(lib)
    assert vw.zero_foreign_sass(blob) == len(sm80)
    assert len(blob) == len(lib)
    assert sm90 in blob and ptx in blob and sm80 not in blob
    assert blob.count(b"\x11") == 0 and blob.endswith(b"tail") and blob.startswith(b"ELF-head")


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("pkg-1.0.dist-info/RECORD", "")
    return path


def test_slim_wheel_drops_what_hopper_never_loads_and_rewrites_record(tmp_path):
    kernels = fatbin([(2, 75, b"\x01" * 50), (2, 90, b"\x02" * 50)])
    src = _wheel(tmp_path / "vllm-0.26.0-cp38-abi3-manylinux_2_28_x86_64.whl", {
        "vllm/__init__.py": b"x = 1\n",
        "vllm/_C_stable_libtorch.abi3.so": b"host" + kernels,
        "vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so": b"fa2" * 100,
        "vllm/third_party/deep_gemm/_C.cpython-312-x86_64-linux-gnu.so": b"dg",
        "vllm/ext.cpython-311-x86_64-linux-gnu.so": b"other python",
        "vllm/configs/E=1,N=14336,device_name=H200.json": b"{}",  # a comma in the name (RECORD is CSV)
        "pkg-1.0.dist-info/METADATA": b"Name: vllm\n",
    })
    dst = tmp_path / "slim" / src.name
    dst.parent.mkdir()
    info = vw.slim_wheel(src, dst)
    assert info["zeroed_bytes"] == 50 and info["dropped_bytes"] == 300 + 2 + len(b"other python")
    with zipfile.ZipFile(dst) as z:
        names = set(z.namelist())
        assert "vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so" not in names
        assert not any("deep_gemm" in n or "cpython-311" in n for n in names)
        lib = z.read("vllm/_C_stable_libtorch.abi3.so")
        assert b"\x02" * 50 in lib and b"\x01" * 50 not in lib
        rows = list(csv.reader(io.StringIO(z.read("pkg-1.0.dist-info/RECORD").decode())))
        by_name = {r[0]: r for r in rows}
        assert set(by_name) == names
        for name in names - {"pkg-1.0.dist-info/RECORD"}:
            digest = base64.urlsafe_b64encode(hashlib.sha256(z.read(name)).digest()).rstrip(b"=").decode()
            assert by_name[name][1:] == [f"sha256={digest}", str(len(z.read(name)))]


def _pure_wheel(directory: Path, name: str, payload: bytes) -> Path:
    """A real installable wheel of one module `name` holding `payload` (incompressible padding)."""
    dist = f"{name}-1.0.dist-info"
    files = {f"{name}.py": b"VALUE = 42\n" + b"# " + payload.hex().encode() + b"\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    path = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
        z.writestr(f"{dist}/RECORD", "".join(f"{n},,\n" for n in files) + f"{dist}/RECORD,,\n")
    return path


def test_bundle_installs_once_every_part_has_arrived(tmp_path):
    rng = random.Random(0)
    wheels = [_pure_wheel(tmp_path, f"mod{i}", rng.randbytes(40_000)) for i in range(2)]
    manifest = vw.bundle(wheels, tmp_path / "bundle", part_bytes=50_000)
    assert len(manifest["parts"]) >= 2
    staging, site = tmp_path / "staging", tmp_path / "site"

    calls = iter(range(10))

    def carry(names: list[str]) -> Path:  # what one device call brings: the manifest and some parts
        call = tmp_path / f"call-{next(calls)}"
        call.mkdir()
        (call / "manifest.json").write_bytes((tmp_path / "bundle" / "manifest.json").read_bytes())
        for n in names:
            (call / n).write_bytes((tmp_path / "bundle" / n).read_bytes())
        return call

    first, *rest = [p["name"] for p in manifest["parts"]]
    assert vw.stage(carry([first]), staging, site) == 3 and not site.exists()
    broken = carry(rest)
    (broken / rest[-1]).write_bytes(b"corrupted in transfer")
    assert vw.stage(broken, staging, site) == 3  # a part whose sum is off does not count
    assert vw.stage(carry(rest), staging, site) == 0
    out = subprocess.run([sys.executable, "-c", "import mod0, mod1; print(mod0.VALUE + mod1.VALUE)"],
                         env={"PYTHONPATH": str(site)}, capture_output=True, text=True)
    assert out.stdout.strip() == "84", out.stderr
    assert vw.stage(carry([]), staging, site) == 0  # a later call finds it installed


def test_pack_refuses_a_download_folder_with_other_wheels(tmp_path, monkeypatch):
    monkeypatch.setattr(vw.subprocess, "run", lambda *a, **k: None)  # no index here: the folder is prepared
    _pure_wheel(tmp_path, "stray", b"")
    with pytest.raises(SystemExit, match="stray"):
        vw.pack(tmp_path / "out", tmp_path)
