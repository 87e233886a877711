"""The measurements behind recipes/smol.yaml's settings, on SmolLM2-135M-Instruct (`lidr model smollm2 DIR`):

  answers:     N Alpagasus prompts per language answered with a system prompt and an answer budget: how many
               answers end before the limit, and their lengths (the `truncated` rule drops pairs holding one).
  translation: the recipe's translation request (default template, primed with <translation>) on the English
               answers that ended (en -> es/de/fr) and the es/de/fr ones (-> en): how many are extracted with
               </translation> only, or also at a stray closing tag (translation.stray_closing_tag), and how many
               of those are in the target language (the project's language ID).

  python bench/smol_settings.py answers --model models/smollm2-135m-instruct --prompts 12 \
      --system "You are a helpful assistant. Answer briefly, in a few sentences." --out answers.json
  python bench/smol_settings.py translation --model models/smollm2-135m-instruct --answers answers.json

Generations go through the project's backend and a request cache (--cache), so a rerun generates nothing.
On a shared 2-core machine set OMP_NUM_THREADS=1 (see recipes/smol.yaml)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lidr_data.generation.base import Request, SamplingParams
from lidr_data.generation.cache import RequestCache
from lidr_data.generation.runner import run_requests
from lidr_data.generation.transformers_backend import TransformersGenerator
from lidr_data.langid import detect_languages
from lidr_data.stages.translate import TranslationConfig, extract_translation, translation_request

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "prompts"
LANGS = ["en", "es", "de", "fr"]


def answers(args: argparse.Namespace, gen: TransformersGenerator, cache: RequestCache) -> None:
    tasks = {json.loads(line)["id"] for line in open(SHARED / "translation-instructions.jsonl")}
    out = {}
    for lang in LANGS:
        rows = [json.loads(line) for line in open(SHARED / "alpagasus-0-1000" / f"{lang}.jsonl")]
        rows = [r for r in rows if r["id"] not in tasks][: args.prompts]
        reqs = [Request.from_messages(r["instruction"], SamplingParams(max_new_tokens=args.max_new_tokens),
                                      args.system) for r in rows]
        start = time.perf_counter()
        comps, _, stats = run_requests(gen, reqs, cache)
        seconds = time.perf_counter() - start
        ended = sum(c.finish_reason == "stop" for c in comps)
        print(f"{lang}: {ended}/{len(comps)} ended before {args.max_new_tokens} tokens; lengths "
              f"{sorted(c.n_tokens for c in comps)}; {sum(c.n_tokens for c in comps)} tokens in {seconds:.0f} s "
              f"(cache hits {stats.cache_hits})", flush=True)
        out[lang] = [{"id": r["id"], "prompt": r["instruction"], "text": c.text, "finish": c.finish_reason,
                      "n": c.n_tokens} for r, c in zip(rows, comps)]
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1))


def translation(args: argparse.Namespace, gen: TransformersGenerator, cache: RequestCache) -> None:
    data = json.loads(Path(args.answers).read_text())
    cfg = TranslationConfig(max_new_tokens=args.max_new_tokens)
    jobs = [("en", t, r) for r in data["en"] if r["finish"] == "stop" for t in LANGS[1:]]
    jobs += [(lang, "en", r) for lang in LANGS[1:] for r in data[lang] if r["finish"] == "stop"]
    reqs = [Request.from_messages(translation_request(cfg, r["text"], s, t),
                                  SamplingParams(max_new_tokens=args.max_new_tokens), args.system,
                                  assistant_prefix=f"<{cfg.tag}>") for s, t, r in jobs]
    comps, _, _ = run_requests(gen, reqs, cache)
    for stray in (False, True):
        texts = [extract_translation(c.text, cfg.tag, stray_closing_tag=stray) for c in comps]
        ids = detect_languages([x or "" for x in texts], LANGS, expected=[t for _, t, _ in jobs])
        extracted = sum(x is not None and x.strip() != "" for x in texts)
        right = sum(x is not None and x.strip() != "" and lang == t for x, (lang, _), (_, t, _) in zip(texts, ids, jobs))
        print(f"stray_closing_tag={stray}: {len(jobs)} translations, {extracted} extracted, {right} in the target "
              f"language")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("answers", "translation"))
    p.add_argument("--model", required=True)
    p.add_argument("--prompts", type=int, default=12)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--system", default="You are a helpful assistant.")
    p.add_argument("--out", default="answers.json")
    p.add_argument("--answers", default="answers.json")
    p.add_argument("--cache", default=".lidr-cache/smol-settings.sqlite")
    args = p.parse_args()
    gen = TransformersGenerator(args.model, batch_size=8, dtype="float32")
    Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
    cache = RequestCache(args.cache)
    (answers if args.what == "answers" else translation)(args, gen, cache)


if __name__ == "__main__":
    main()
