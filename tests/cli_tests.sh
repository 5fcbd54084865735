#!/usr/bin/env bash
# The sparseplan command as a user runs it: exit codes and the messages printed on bad input.
# $SPARSEPLAN is the binary under test.
set -u
bin=${SPARSEPLAN:?set SPARSEPLAN to the sparseplan binary}
root=$(cd "$(dirname "$0")/.." && pwd)
source "$(dirname "$0")/cli_expect.sh"


plans=$root/configs/plans
good=$plans/wan2.1-1.3b-480p-sliding-tile.json

expect "validate accepts a shipped plan" 0 "valid plan for wan2.1-1.3b" -- "$bin" validate "$good"
expect "validate checks the plan against a model preset" 1 "plan has 12 heads per layer, model wan2.1-14b has 40" -- "$bin" validate "$good" --model wan2.1-14b
expect "validate reports a missing file" 1 "cannot open" -- "$bin" validate "$tmp/none.json"
echo '{"format": "sparseplan/1", "model": ' >"$tmp/broken.json"
expect "validate reports malformed JSON" 1 "malformed JSON" -- "$bin" validate "$tmp/broken.json"
sed 's/"tiles":\[3,5\]/"tiles":[3,-5]/' "$good" >"$tmp/negative.json"
expect "validate names the path of a negative window" 1 "layers[0].heads[0].window.groups[0].tiles: expected 2 positive integers" -- "$bin" validate "$tmp/negative.json"
sed 's/"tiles":\[3,5\]/"tiles":[3,50]/' "$good" >"$tmp/oversized.json"
expect "validate rejects an oversized window" 1 "larger than the grid" -- "$bin" validate "$tmp/oversized.json"
sed 's/"block_size": 64/"block_size": "64"/' "$good" >"$tmp/type.json"
expect "validate rejects a wrong type" 1 "block_size: expected one of" -- "$bin" validate "$tmp/type.json"
sed 's/"heads":12/"heads":13/' "$good" >"$tmp/heads.json"
expect "validate rejects a plan whose heads do not match" 1 "expected 13 heads (model.heads), got 12" -- "$bin" validate "$tmp/heads.json"

expect "layout prints densities" 0 "mean density" -- "$bin" layout "$good" --png "$tmp/mask.png" --layer 2 --head 3
[ -s "$tmp/mask.png" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: layout wrote no PNG"; }
expect "layout draws the mask as an SVG figure" 0 "wrote $tmp/mask.svg" -- "$bin" layout "$good" --svg "$tmp/mask.svg" --layer 2 --head 3
check "the mask figure is XML with labelled axes" python3 -c 'import sys, xml.etree.ElementTree as E; t = [e.text for e in E.parse(sys.argv[1]).iter() if e.get("class") == "axis-label"]; sys.exit(t != ["key block (tile order)", "query block (tile order)"])' "$tmp/mask.svg"
# 3x6x4 tiles hold 72 tokens: two 64-token blocks each, the second mostly padding.
expect "layout counts the padding of partial blocks" 0 "padding: 25480 slots, 77.8% of the tokens" -- "$bin" layout "$good"
expect "layout counts the stages of paired 64-token query blocks" 0 "with the pair orders" -- "$bin" layout "$good"
expect "layout exports a layer's layouts for the benchmarks" 0 "layouts of layer 2 (12 heads)" -- "$bin" layout "$good" --layer 2 --export-csr "$tmp/layer2.safetensors"
check "the exported layouts open as safetensors with the CSR and the token order" python3 -c "
import json, struct, sys
blob = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', blob[:8])[0]
h = json.loads(blob[8:8 + n])
assert h['row_offsets']['shape'] == [12, 911] and h['token_of_slot']['shape'] == [58240]
assert h['slot_of_token']['shape'] == [32760] and h['__metadata__']['block_size'] == '64'
assert h['q_pair_order']['shape'] == [12, 910]
" "$tmp/layer2.safetensors"
expect "layout rejects a grid that does not match" 1 "plan is for a 21x30x52 token grid, the video has 21x45x80" -- "$bin" layout "$good" --grid 21,45,80
expect "layout rejects a malformed grid" 1 "expected F,H,W" -- "$bin" layout "$good" --grid 21,45
expect "layout rejects a head the plan lacks" 1 "the plan has 30 layers and 12 heads" -- "$bin" layout "$good" --head 12
expect "layout without a plan is a usage error" 106 "plan is required" -- "$bin" layout

expect "baseline writes a radial plan" 0 "radial baseline" -- "$bin" baseline --kind radial --model hunyuanvideo --grid 720p-129f --out "$tmp/radial.json"
expect "a written baseline validates" 0 "valid plan for hunyuanvideo" -- "$bin" validate "$tmp/radial.json"
expect "baseline rejects an unknown kind" 1 "expected sliding-tile, radial or spatial-temporal" -- "$bin" baseline --kind diagonal --out "$tmp/x.json"
expect "baseline rejects an unknown model" 1 "unknown model preset 'wan3'" -- "$bin" baseline --model wan3 --out "$tmp/x.json"
expect "baseline rejects a tile larger than the grid" 1 "tile: larger than the grid" -- "$bin" baseline --model wan-mini --grid 64px-16f --tile 4,32,4 --out "$tmp/x.json"
expect "baseline rejects a malformed tile" 1 "--tile '4,4': expected 3 integers" -- "$bin" baseline --tile 4,4 --out "$tmp/x.json"
[ ! -e "$tmp/x.json" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: a failed baseline left a file"; }

expect "an unknown subcommand is a usage error" 106 "A subcommand is required" -- "$bin" frobnicate
expect "--help lists the subcommands" 0 "validate" -- "$bin" --help

finish "cli"
