"""Bring a CUDA vLLM and the packages it imports to a GPU machine that has no network.

Here (a machine with a package index), `pack` downloads the wheels, slims vLLM's (below) and
writes one xz-compressed tar of them, split into parts small enough for one transfer each, with a
manifest of sha256 sums; beside it, `serve-deps/` holds the few wheels m1bench's embedded server
needs (FastAPI, uvicorn, pydantic), small enough to ride with the first part. There, `stage` is
run once per transfer: it copies the parts it finds into a staging folder that outlives the call
and, once all are there, joins them, checks every sum and installs the wheels with pip (no index,
no dependency resolution: the list below is the resolution) into a target folder to put on
PYTHONPATH. Standard library only: it runs before anything is installed.

    python3 harness/bench/vllm_wheels.py pack          # here: .whl/vllm-h200/{manifest.json,part-00,part-01}

then one device call per part, back to back while the machine stays warm (its files outlive a
call, not a give-back), each carrying `.whl/vllm-h200/manifest.json` and that part (the first also
`.whl/serve-deps`) and running `bash harness/bench/vllm_h200.sh`: it stages the part, runs what
needs no vLLM until the bundle is complete, then installs it and runs the vLLM benchmark
(harness/bench/vllm_gpu.py). Measured on the H200: the machine's start and part 1 (52 MiB) took
34 s before the command ran, part 2 10 s.

Slimming, for one Hopper GPU (sm_90) serving bf16 models: the FlashAttention-2 library (Hopper
runs FlashAttention-3), the Blackwell/FP8/MLA extras (DeepGEMM, fmha_sm100, FlashMLA, QuTLASS),
the Rust frontend binary and extension modules built for other Pythons are left out, and in the
remaining libraries the machine code compiled for other GPU generations (sm_75..sm_120 except
sm_90) is zeroed, entry headers kept, so the CUDA loader still finds the sm_90 code and the PTX.
Zeroed bytes cost nothing once compressed; what is left loads as shipped. FlashInfer is not
carried (vLLM runs without it; its sampler must be told: VLLM_USE_FLASHINFER_SAMPLER=0).
"""
from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import lzma
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

VLLM = "vllm==0.26.0"
# What vLLM 0.26.0 imports to serve (found by importing its server, engine, model-runner,
# attention, MoE and parser modules with only the GPU image's packages present), in versions that
# meet its pins; the image (torch 2.11.0+cu130, triton 3.6.0, transformers, numpy, aiohttp, ...)
# has everything else.
DEPS = (
    "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5",
    "fastapi==0.136.3", "starlette==1.10.0", "uvicorn==0.55.0", "watchfiles==1.3.0",
    "prometheus-fastapi-instrumentator==8.1.0", "openai==3.57.0", "jiter==0.19.0", "sniffio==1.3.1",
    "httpx2==2.16.2", "httpcore2==2.16.2", "truststore==0.10.5",
    "cachetools==8.0.2", "cbor2==6.3.0", "msgspec==0.23.0", "pybase64==1.5.1", "pyzmq==27.3.0",
    "blake3==1.0.11", "setproctitle==1.3.8", "python-json-logger==4.2.0",
    "openai-harmony==0.0.8", "partial-json-parser==0.2.1.1.post7",
    "llguidance==1.7.6", "xgrammar==0.2.9", "apache-tvm-ffi==0.1.15.post2",  # 0.1.10 (vLLM's pin) is too old for xgrammar 0.2.9
    "model-hosting-container-standards==0.1.16", "jmespath==1.1.0", "supervisor==4.3.0",
)
SERVE_DEPS = {"fastapi", "starlette", "uvicorn", "pydantic", "pydantic-core", "annotated-types", "typing-inspection"}
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"] + [
    # the GPU image is glibc 2.39 (Ubuntu 24.04, Python 3.12): pip matches each manylinux tag exactly
    arg for tag in [f"manylinux_2_{n}_x86_64" for n in range(39, 16, -1)] + ["manylinux2014_x86_64", "manylinux1_x86_64", "any"]
    for arg in ("--platform", tag)]
DROP = ("vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so", "vllm/third_party/deep_gemm/", "vllm/third_party/fmha_sm100/",
        "vllm/_flashmla_C.abi3.so", "vllm/_flashmla_extension_C.abi3.so", "vllm/_qutlass_C.abi3.so", "vllm/vllm-rs")
KEEP_SM = 90
PART_BYTES = 52 << 20  # one transfer carries 64 MiB with the working tree (~7 MiB) and a few small wheels
FATBIN_MAGIC = 0xBA55ED50


def zero_foreign_sass(blob: bytearray, keep_sm: int = KEEP_SM) -> int:
    """Zero the payload of every ELF (SASS) entry of every CUDA fatbin in a shared library whose
    target is not sm_`keep_sm`; PTX entries and all headers stay. Returns the bytes zeroed.
    Fatbin: header (u32 magic, u16 version=1, u16 header size=16, u64 size) then entries
    (u16 kind 1=PTX 2=ELF, u16, u32 header size, u64 payload size, ..., u32 sm at +28)."""
    zeroed, at = 0, 0
    magic = struct.pack("<I", FATBIN_MAGIC)
    while (at := blob.find(magic, at)) >= 0:
        _, version, header, size = struct.unpack_from("<IHHQ", blob, at)
        end = at + header + size
        if version != 1 or header != 16 or end > len(blob):
            at += 4
            continue
        entries, j = [], at + header
        while j < end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", blob, j)
            entries.append((kind, struct.unpack_from("<I", blob, j + 28)[0], j + entry_header, payload))
            j += entry_header + payload
        if j != end:  # not a fatbin after all: leave it untouched
            at += 4
            continue
        for kind, sm, start, payload in entries:
            if kind == 2 and sm != keep_sm:
                blob[start:start + payload] = bytes(payload)
                zeroed += payload
        at = end
    return zeroed


def _record_row(name: str, data: bytes) -> list[str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [name, f"sha256={digest}", str(len(data))]


def slim_wheel(src: Path, dst: Path) -> dict:
    """vLLM's wheel without what one Hopper GPU never loads (module docstring); RECORD rewritten."""
    dropped, zeroed, records = 0, 0, []
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
        for info in zin.infolist():
            name = info.filename
            if name == record_name:
                continue
            if name.startswith(DROP) or (".cpython-3" in name and ".cpython-312-" not in name and name.endswith(".so")):
                dropped += info.file_size
                continue
            data = zin.read(name)
            if name.endswith(".so"):
                blob = bytearray(data)
                zeroed += zero_foreign_sass(blob)
                data = bytes(blob)
            zout.writestr(info, data)
            records.append(_record_row(name, data))
        record = io.StringIO()
        csv.writer(record, lineterminator="\n").writerows(records + [[record_name, "", ""]])  # names hold commas
        zout.writestr(record_name, record.getvalue())
    return {"dropped_bytes": dropped, "zeroed_bytes": zeroed}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def pack(out: Path, download: Path) -> dict:
    """Download VLLM and DEPS for the GPU machine's Python and platform, slim vLLM's wheel, bundle."""
    download.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *PLATFORM, "-d", str(download),
                    VLLM, *DEPS], check=True)
    wheels = sorted(download.glob("*.whl"))
    have = {"==".join(w.name.split("-")[:2]).lower().replace("_", "-") for w in wheels}
    wanted = {r.lower().replace("_", "-") for r in (VLLM, *DEPS)}
    if have != wanted or len(wheels) != len(wanted):
        raise SystemExit(f"{download} holds wheels other than the list ({sorted(have - wanted)}): empty it")
    vllm_wheel = next(w for w in wheels if w.name.startswith("vllm-"))
    slim = download / "slim" / vllm_wheel.name
    slim.parent.mkdir(exist_ok=True)
    slimmed = slim_wheel(vllm_wheel, slim)
    manifest = bundle([slim] + [w for w in wheels if w != vllm_wheel], out)
    manifest.update(vllm=VLLM, deps=list(DEPS), slimmed=slimmed)
    serve = out.parent / "serve-deps"
    shutil.rmtree(serve, ignore_errors=True)
    serve.mkdir()
    for w in wheels:
        if w.name.split("-")[0].lower().replace("_", "-") in SERVE_DEPS:
            shutil.copy(w, serve / w.name)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def bundle(wheels: list[Path], out: Path, part_bytes: int = PART_BYTES) -> dict:
    """One xz-compressed tar of `wheels` in `out`, split into parts of at most `part_bytes`, with
    manifest.json (every part's sha256 and the whole bundle's)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    buffer = io.BytesIO()
    with lzma.open(buffer, "wb", preset=9 | lzma.PRESET_EXTREME) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for w in wheels:
            tar.add(w, arcname=w.name)
    data, parts = buffer.getvalue(), []
    for i in range(0, len(data), part_bytes):
        part = out / f"part-{i // part_bytes:02d}"
        part.write_bytes(data[i:i + part_bytes])
        parts.append({"name": part.name, "sha256": hashlib.sha256(data[i:i + part_bytes]).hexdigest()})
    manifest = {"bundle_sha256": hashlib.sha256(data).hexdigest(), "bundle_bytes": len(data), "parts": parts,
                "wheels": [w.name for w in wheels]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def stage(carried: Path, staging: Path, site: Path) -> int:
    """Copy the parts in `carried` to `staging`; once all are there, check, join, install.
    Exit 0 when installed (now or earlier), 3 while parts are missing."""
    manifest = json.loads((carried / "manifest.json").read_text())
    staging.mkdir(parents=True, exist_ok=True)
    done = staging / "installed.json"
    if done.exists() and json.loads(done.read_text())["bundle_sha256"] == manifest["bundle_sha256"]:
        print(f"already installed in {site}")
        return 0
    for part in manifest["parts"]:
        src = carried / part["name"]
        if src.exists() and _sha256(src) == part["sha256"]:
            shutil.copyfile(src, staging / part["name"])
    missing = [p["name"] for p in manifest["parts"]
               if not (staging / p["name"]).exists() or _sha256(staging / p["name"]) != p["sha256"]]
    if missing:
        print(f"staged {len(manifest['parts']) - len(missing)}/{len(manifest['parts'])} parts; missing: {missing}")
        return 3
    joined = io.BytesIO(b"".join((staging / p["name"]).read_bytes() for p in manifest["parts"]))
    if hashlib.sha256(joined.getbuffer()).hexdigest() != manifest["bundle_sha256"]:
        raise SystemExit("joined bundle does not match the manifest's sha256: re-stage the parts")
    wheels = staging / "wheels"
    with lzma.open(joined) as xz, tarfile.open(fileobj=xz) as tar:
        tar.extractall(wheels, filter="data")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, sorted(wheels.glob("*.whl")))],
                   check=True)
    done.write_text(json.dumps({"bundle_sha256": manifest["bundle_sha256"], "site": str(site)}))
    print(f"installed {len(manifest['wheels'])} wheels into {site}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="vllm_wheels.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="download, slim, compress and split (on a machine with a package index)")
    a.add_argument("--out", type=Path, default=Path(".whl/vllm-h200"), help="parts + manifest.json")
    a.add_argument("--download", type=Path, default=Path(".whl/download"), help="where the wheels are downloaded")
    b = sub.add_parser("stage", help="on the GPU machine: stage the carried parts; install once all are there")
    b.add_argument("carried", type=Path, help="the folder with manifest.json and this transfer's parts")
    b.add_argument("--staging", type=Path, default=Path("/tmp/vllm-stage"))
    b.add_argument("--site", type=Path, default=Path("/tmp/site"), help="pip --target folder (put it on PYTHONPATH)")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        m = pack(args.out, args.download)
        print(f"{len(m['parts'])} parts, {m['bundle_bytes'] / 2**20:.1f} MiB in all, in {args.out}; "
              f"slimmed: {m['slimmed']}")
        return 0
    return stage(args.carried, args.staging, args.site)


if __name__ == "__main__":
    sys.exit(main())
