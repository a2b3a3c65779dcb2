"""The Explore page on a large synthetic dataset, and the nearest-neighbour index sizes.

- ``synthetic``: a dataset of ``rows`` rows (default 30,000) is written from the demo: the
  files of its first ``distinct`` records are copied, and every row reuses one of them with
  its own id, split and metadata (a 20-value category and a number), so the manifest and
  every table are full-size while encoding stays cheap (the embedding store keys on content).
- ``browser``: a live ``streamlit run`` shows Explore on the ``all`` split in headless Chromium.
  ``first_load_s``: from opening the page until the first page of samples shows (validating
  the dataset, predicting every row with each checkpoint chosen in the sidebar). Then
  ``page_s``: Next/Previous until the new page's samples show, and ``filter_s``: picking a
  label until the new match count shows, each median of ``repeats``, and ``*_settled_s`` until
  the page's script has finished too. ``memory``: peak resident memory of the server.
- ``core``: the same table in this process: building it, and one filter + sort + page query.
- ``index``: exact (``IndexFlatIP``) and HNSW faiss indices over random 128-d vectors at
  several sizes: build time and the median time of one query; where exact search stops
  being interactive is what :data:`core.explore.index.EXACT_MAX_ROWS` is set from.

Options (all optional): ``rows``, ``distinct``, ``data``, ``checkpoints``, ``repeats``,
``quick`` (fewer rows and repeats), ``browser`` (False: skip the browser part), ``timeout_s``.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.dashboard import memory_peaks
from bench.server import CHROMIUM, CHROMIUM_ARGS, free_port, start_dashboard, stop_dashboard, wait_healthy
from core.data import load_dataset
from core.data.manifest import SPLITS
from core.settings import settings

MATCHING = re.compile(r"of ([\d,]+) matching")


def write_synthetic(source: Path, out: Path, rows: int, distinct: int, seed: int = 0) -> Path:
    """A dataset folder of ``rows`` rows reusing the files and texts of ``source``'s first ``distinct`` records."""
    records = load_dataset(source).records[:distinct]
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    cells = []
    for record in records:
        image = audio = ""
        if record.image is not None:
            image = f"images/{record.image.name}"
            shutil.copyfile(record.image, out / image)
        if record.audio is not None:
            audio = f"audio/{record.audio.name}"
            shutil.copyfile(record.audio, out / audio)
        cells.append((record.label, image, audio, record.text or ""))
    splits = rng.choice(SPLITS, size=rows, p=[0.7, 0.15, 0.15])
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "split", "image", "audio", "text", "batch", "score"])
        for i in range(rows):
            label, image, audio, text = cells[i % len(cells)]
            writer.writerow([f"s{i:06d}", label, splits[i], image, audio, text, f"b{i % 20:02d}", f"{rng.normal():.4f}"])
    return out


def core_figures(data: Path, checkpoints: list[Path], repeats: int) -> dict[str, Any]:
    """Build the ``all`` table with each checkpoint's predictions here, then time one query."""
    from core.checkpoints import load_checkpoint
    from core.encoders.cache import EmbeddingCache
    from core.explore import BrowseQuery, browse, split_predictions, split_table

    started = time.perf_counter()
    dataset = load_dataset(data)
    loaded_s = time.perf_counter() - started
    cache = EmbeddingCache()
    started = time.perf_counter()
    predictions = [split_predictions(load_checkpoint(p), dataset, "all", cache=cache) for p in checkpoints]
    predicted_s = time.perf_counter() - started
    started = time.perf_counter()
    table = split_table(dataset, "all", predictions)
    table_s = time.perf_counter() - started
    query = BrowseQuery(equals={"label": [dataset.classes[0]], "batch": ["b03", "b07"]}, sort_by="score", descending=True, page=2)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        page = browse(table, query)
        times.append(time.perf_counter() - started)
    return {
        "rows": len(table),
        "load_dataset_s": loaded_s,
        "predict_s": predicted_s,
        "table_s": table_s,
        "query_ms": 1000 * float(np.median(times)),
        "query_matches": page.total,
    }


def index_figures(sizes: list[int], dim: int = 128, queries: int = 50) -> list[dict[str, Any]]:
    """Build time and single-query latency of exact and HNSW indices at each size."""
    from core.explore.index import VectorIndex

    rng = np.random.default_rng(0)
    out = []
    for size in sizes:
        vectors = rng.normal(size=(size, dim)).astype(np.float32)
        probe = rng.normal(size=(queries, dim)).astype(np.float32)
        row: dict[str, Any] = {"size": size}
        for kind, exact_max in (("exact", size), ("hnsw", 0)):
            started = time.perf_counter()
            index = VectorIndex.build(vectors, exact_max=exact_max)
            row[f"{kind}_build_s"] = time.perf_counter() - started
            times = []
            for query in probe:
                started = time.perf_counter()
                index.search(query, 10)
                times.append(time.perf_counter() - started)
            row[f"{kind}_query_ms"] = 1000 * float(np.median(times))
        out.append(row)
    return out


def _matches(page) -> int:
    return int(MATCHING.search(page.get_by_text(MATCHING).first.inner_text()).group(1).replace(",", ""))


def _settled(page, timeout_ms: float) -> None:
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)


def browser_figures(data: Path, rows: int, checkpoints: Path, repeats: int, timeout_ms: float) -> dict[str, Any]:
    """Drive Explore on the ``all`` split of ``data`` in headless Chromium (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="bench-explore-server-"))
    env = {
        "FUSION_DEMO_DATA": str(data),
        "FUSION_CHECKPOINTS": str(checkpoints),
        "FUSION_CACHE_DIR": str(scratch / "cache"),
        "FUSION_RUNS": str(scratch / "runs"),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with sync_playwright() as playwright, open(scratch / "streamlit.log", "wb") as log:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 2000})
        page.set_default_timeout(timeout_ms)
        server = start_dashboard(port, env, log)
        try:
            wait_healthy(url, server, timeout=timeout_ms / 1000)
            started = time.perf_counter()
            page.goto(f"{url}/explore")
            page.get_by_text(MATCHING).first.wait_for()
            _settled(page, timeout_ms)
            page.locator('[data-testid="stSelectbox"]').filter(has_text="Split").first.click()
            page.get_by_role("option", name="all", exact=True).click()
            page.get_by_text(f"of {rows:,} matching").first.wait_for()
            first_load_s = time.perf_counter() - started
            _settled(page, timeout_ms)
            total = _matches(page)
            page_times, page_settled, filter_times, filter_settled = [], [], [], []
            for i in range(repeats):
                button, number = ("Next", 2) if i % 2 == 0 else ("Previous", 1)
                started = time.perf_counter()
                page.get_by_role("button", name=button).click()
                page.get_by_text(re.compile(rf"page {number} of")).first.wait_for()
                page_times.append(time.perf_counter() - started)
                _settled(page, timeout_ms)
                page_settled.append(time.perf_counter() - started)
            labels = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Label").first
            shown = total
            for _ in range(repeats):  # each round adds one more label to the filter: a new match count
                labels.locator("input").first.click()
                started = time.perf_counter()
                page.get_by_role("option").filter(has_not_text="Select all").first.click()
                page.keyboard.press("Escape")
                page.wait_for_function(
                    f"!document.body.innerText.includes('of {shown:,} matching') "
                    "&& /of [\\d,]+ matching/.test(document.body.innerText)"
                )
                filter_times.append(time.perf_counter() - started)
                _settled(page, timeout_ms)
                filter_settled.append(time.perf_counter() - started)
                shown = _matches(page)
            exceptions = page.locator('[data-testid="stException"]').count()
            memory = memory_peaks(server.pid)
        finally:
            stop_dashboard(server)
            browser.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "rows_shown": total,
        "first_load_s": first_load_s,
        "page_s": float(np.median(page_times)),
        "page_settled_s": float(np.median(page_settled)),
        "filter_s": float(np.median(filter_times)),
        "filter_settled_s": float(np.median(filter_settled)),
        "page_times_s": page_times,
        "filter_times_s": filter_times,
        "exceptions": exceptions,
        "memory": memory,
    }


def run(options: dict[str, Any]) -> dict[str, Any]:
    """The synthetic dataset, its table in core, the browser figures and the index sizes."""
    quick = bool(options.get("quick"))
    rows = int(options.get("rows") or (600 if quick else 30_000))
    distinct = int(options.get("distinct", 60 if quick else 300))
    repeats = int(options.get("repeats", 2 if quick else 6))
    source = Path(options.get("data") or settings().demo_data)
    checkpoint_dir = Path(options.get("checkpoints") or settings().checkpoints).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="bench-explore-"))
    started = time.perf_counter()
    data = write_synthetic(source, scratch / "data", rows, distinct)
    result: dict[str, Any] = {
        "section": "explore",
        "synthetic": {"rows": rows, "distinct_files": distinct, "write_s": time.perf_counter() - started},
    }
    from core.card import list_checkpoints

    fusions = [i.path for i in list_checkpoints(checkpoint_dir) if i.error is None and i.kind == "fusion"]
    result["core"] = core_figures(data, fusions, repeats)
    result["core"]["checkpoints"] = len(fusions)
    result["index"] = index_figures([1_000, 10_000] if quick else [3_000, 30_000, 100_000, 300_000])
    if options.get("browser", True) is False:
        result["browser"] = {"skipped": "browser=False"}
    elif not CHROMIUM.exists():
        result["browser"] = {"skipped": f"{CHROMIUM} is missing (install Debian's chromium)"}
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            result["browser"] = {"skipped": "the playwright python package is not installed"}
        else:
            result["browser"] = browser_figures(data, rows, checkpoint_dir, repeats, 1000 * float(options.get("timeout_s", 900)))
    shutil.rmtree(scratch, ignore_errors=True)
    return result
