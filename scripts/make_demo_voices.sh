#!/usr/bin/env bash
# Regenerate the clean spoken-digit prototypes committed in core/data/demo_voices/.
#
# The demo builder only mixes these committed WAVs, so building the demo never
# needs espeak-ng; run this script only to change the voices. Each digit word is
# spoken by 8 voice/speed/pitch variants, resampled to 16 kHz mono 16-bit PCM and
# trimmed of leading/trailing silence (through core.io, the project's one decoder).
#
# Usage: scripts/make_demo_voices.sh [python]   (python defaults to .venv/bin/python)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${1:-$repo_root/.venv/bin/python}"
out_dir="$repo_root/core/data/demo_voices"
raw_dir="$(mktemp -d)"
trap 'rm -rf "$raw_dir"' EXIT

command -v espeak-ng >/dev/null || { echo "espeak-ng is not installed" >&2; exit 1; }

words=(zero one two three four five six seven eight nine)
# name:voice:speed(words/min):pitch(0-99). Mbrola voices are avoided: they need extra packages.
variants=(
  "en:en:165:50"
  "enus:en-us:150:45"
  "scot:en-gb-scotland:175:55"
  "carib:en-029:140:40"
  "f3:en+f3:160:70"
  "m3:en+m3:185:30"
  "usf2:en-us+f2:145:80"
  "klatt:en+klatt:170:60"
)

for digit in "${!words[@]}"; do
  for spec in "${variants[@]}"; do
    IFS=: read -r name voice speed pitch <<<"$spec"
    espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$raw_dir/${digit}_${name}.wav" "${words[$digit]}"
  done
done

mkdir -p "$out_dir"
rm -f "$out_dir"/*.wav
cd "$repo_root"
"$python" - "$raw_dir" "$out_dir" <<'PY'
import sys
from pathlib import Path

import librosa
import numpy as np

from core.io import decode_audio, encode_wav, read_file

raw_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
for raw in sorted(raw_dir.glob("*.wav")):
    waveform = decode_audio(read_file(raw))  # 16 kHz mono float32
    trimmed, _ = librosa.effects.trim(waveform, top_db=35)
    # Normalise peaks so the demo's gain and SNR draws mean the same for every voice.
    trimmed = 0.9 * trimmed / max(float(np.abs(trimmed).max()), 1e-6)
    (out_dir / raw.name).write_bytes(encode_wav(trimmed))
print(f"wrote {len(list(out_dir.glob('*.wav')))} prototypes to {out_dir}")
PY
