"""python -m blending {train-tokenizer,build,verify,fetch,preview,locate}"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from blending.fetch import FetchError
from blending.indexed import IndexFormatError
from blending.locate import LocateError
from blending.manifest import ManifestError
from blending.stage_folder import InputError, OutputExistsError
from blending.tokenizer import TokenizerError
from blending.user_errors import reports_bad_input

DESCRIPTION = """Documents -> tokenized Megatron shards + manifest.json (the trainer's only input).

  train-tokenizer  train a byte-level BPE (HF tokenizers) on stage output folders
  build            tokenize every source of a blend config with Spark, write Megatron .bin/.idx
                   shards per source and split (2% validation by a hash of doc_id) and manifest.json
  verify           check every file of a manifest: presence, size, sha256, index headers, tokenizer
  fetch            copy a blend (from s3:// or any folder) to local disk, every sha256 checked
  preview          the mixture a training run would draw (Megatron's error-tracking blend) and a
                   Table-1-style summary of tokens, weights and epochs
  locate           the documents a training sample is made of (or a document by shard, doc_id or
                   origin): source, shard, token range, doc_id, URL, origin and text
"""


def _train_tokenizer(args) -> int:
    from blending.documents import iter_texts
    from blending.hashing import sha256_file
    from blending.tokenizer import TOKENIZER_FILE, train_bpe, vocab_size

    started = time.perf_counter()
    texts = iter_texts(args.input, args.source, args.text_column, args.exclude_valid_fraction, args.max_documents)
    counted = _Counter(texts)
    tokenizer = train_bpe(counted, args.vocab_size, min_frequency=args.min_frequency)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / TOKENIZER_FILE
    tokenizer.save(str(path))
    print(f"trained a {vocab_size(tokenizer)}-token byte-level BPE on {counted.documents:,} documents "
          f"({counted.bytes / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    print(f"{path}  sha256 {sha256_file(path)}")
    return 0


class _Counter:
    def __init__(self, texts):
        self.texts, self.documents, self.bytes = texts, 0, 0

    def __iter__(self):
        for text in self.texts:
            self.documents += 1
            self.bytes += len(text.encode("utf-8"))
            yield text


def _build(args) -> int:
    from blending.build import build
    from blending.config import BlendConfig

    config = BlendConfig.load(args.config)  # checked before Spark starts
    build(config, args.out, overwrite=args.overwrite, master=args.master, partitions=args.partitions,
          allow_partial=args.allow_partial, replace_changed=args.replace_changed)
    return 0


def _verify(args) -> int:
    from blending.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(args.manifest, verify_hashes=True)
    except ManifestError as error:
        raise ManifestError(f"FAILED: {error}") from None
    shards = [shard for split in ("train", "valid") for _, shard in manifest.shards(split)]
    files = 1 + sum(2 + (shard.docs_path is not None) for shard in shards)
    print(f"OK: {files} files, {len(manifest.sources)} sources, "
          f"{manifest.tokens('train'):,} train + {manifest.tokens('valid'):,} valid tokens")
    return 0


def _fetch(args) -> int:
    from blending.fetch import fetch

    fetch(args.manifest, args.to)
    return 0


def _preview(args) -> int:
    from blending.manifest import load_manifest
    from blending.preview import format_preview, preview

    manifest = load_manifest(args.manifest)
    print(format_preview(preview(manifest, args.samples, args.seq_len, args.split)))
    return 0


def _locate(args) -> int:
    from blending.locate import main as locate

    return locate(args)


@reports_bad_input("python -m blending", InputError, OutputExistsError, TokenizerError, ManifestError,
                   IndexFormatError, LocateError, FetchError)
def main(argv: list[str] | None = None) -> int:
    from blending.locate import DEFAULT_SEED, DEFAULT_SEQ_LENGTH

    parser = argparse.ArgumentParser(prog="python -m blending", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train-tokenizer", help="train a byte-level BPE on documents",
                            description="Train a byte-level BPE (HF tokenizers) on the texts of stage output "
                                        "folders; the same documents give the same tokenizer.json. "
                                        "The end-of-document token <|endoftext|> gets id 0.")
    p.add_argument("--input", nargs="+", required=True, metavar="DOCS", help="stage folder(s) (part-*.parquet, _SUCCESS)")
    p.add_argument("--vocab-size", type=int, required=True, metavar="V", help="vocabulary size, special token included")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for tokenizer.json")
    p.add_argument("--source", help="only documents of this source")
    p.add_argument("--text-column", default="text")
    p.add_argument("--max-documents", type=int, help="stop after this many documents")
    p.add_argument("--min-frequency", type=int, default=2, help="a merge needs a pair seen this often")
    p.add_argument("--exclude-valid-fraction", type=float, default=0.02,
                   help="leave out the documents the shard builder puts in validation (default 0.02; 0 keeps all)")
    p.set_defaults(run=_train_tokenizer)

    p = commands.add_parser("build", help="tokenize sources into Megatron shards and write manifest.json",
                            description="Tokenize every source of a blend config with Spark and write, per source "
                                        "and split, Megatron indexed datasets (.bin/.idx) plus manifest.json, "
                                        "stats.json and _SUCCESS, atomically. An existing identical build is reused.")
    p.add_argument("--config", required=True, help="blend config, e.g. infra/blend.yaml")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder, e.g. out/shards")
    p.add_argument("--overwrite", action="store_true", help="replace a different existing build in DIR")
    p.add_argument("--replace-changed", action="store_true",
                   help="rebuild DIR when its build was made from other documents or config (an identical one is reused)")
    p.add_argument("--master", help="Spark master (default: spark-submit's, $SPARK_MASTER or local[*])")
    p.add_argument("--partitions", type=int, help="tokenizing tasks (default: one per part file); more than the part files cuts each into row-group slices")
    p.add_argument("--allow-partial", action="store_true",
                   help="blend folders that are not the output of the pipeline's last stage (not fully curated)")
    p.set_defaults(run=_build)

    p = commands.add_parser("verify", help="check every file and hash of a manifest",
                            description="Check every file a manifest lists: present, its size, its sha256, "
                                        "its index header and counts, and the tokenizer. Exit 2 and name the "
                                        "first problem otherwise.")
    p.add_argument("manifest", help="manifest.json (or its folder)")
    p.set_defaults(run=_verify)

    p = commands.add_parser("fetch", help="copy a blend (e.g. from s3://) to a local folder, every sha256 checked",
                            description="Copy the manifest's files to DIR, each checked against its sha256; DIR "
                                        "appears complete or not at all, and a stopped fetch resumes where it "
                                        "was (files already fetched are kept). The trainer reads DIR.")
    p.add_argument("manifest", help="manifest.json (or its folder): a path or a URI (s3://...)")
    p.add_argument("--to", required=True, metavar="DIR", help="local folder to copy the blend into")
    p.set_defaults(run=_fetch)

    p = commands.add_parser("preview", help="realised mixture and Table-1-style summary",
                            description="Draw N samples of L tokens with Megatron's error-tracking blend "
                                        "(build_blending_indices) and print the realised share per source "
                                        "against its weight, and tokens, weight and epochs per source for "
                                        "N x L training tokens.")
    p.add_argument("manifest", help="manifest.json (or its folder)")
    p.add_argument("--samples", type=int, required=True, metavar="N")
    p.add_argument("--seq-len", type=int, required=True, metavar="L")
    p.add_argument("--split", choices=["train", "valid"], default="train")
    p.set_defaults(run=_preview)

    p = commands.add_parser("locate", help="the documents of a training sample, or a document by id or origin",
                            description="Which documents sample N of the blended stream the trainer reads is made "
                                        "of, or a document by shard and number, doc_id or origin; for each: source, "
                                        "shard, document number, token range, doc_id, URL, origin (WARC file@offset "
                                        "or input file:row) and the text's first lines. The stream is the one a run "
                                        "read (--run) or the one of --seq-len, --seed and --samples. With --origin "
                                        "and --page, also the WARC record behind the origin, re-read from its file "
                                        "(local, s3:// or https://). Exit 1 when nothing is found.")
    p.add_argument("manifest", nargs="?", help="manifest.json (or its folder); optional for --origin with "
                                               "--page")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--sample", type=int, metavar="N", help="index of a sample in the split's blended stream")
    what.add_argument("--shard", metavar="PREFIX", help="a shard prefix as the manifest lists it (with --doc)")
    what.add_argument("--doc-id", metavar="ID", help="a document's doc_id")
    what.add_argument("--origin", metavar="ORIGIN", help="a document's origin: WARC file@offset or input file:row")
    p.add_argument("--doc", type=int, metavar="I", help="document number within --shard")
    p.add_argument("--split", choices=["train", "valid"], default="train")
    p.add_argument("--run", dest="run_dir", metavar="DIR", help="a training run's folder: its stream (seq length, seed, samples)")
    p.add_argument("--seq-len", type=int, default=DEFAULT_SEQ_LENGTH, metavar="L",
                   help=f"sequence length of the stream (default {DEFAULT_SEQ_LENGTH}, the trainer's)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the stream (default {DEFAULT_SEED}, the trainer's)")
    p.add_argument("--samples", type=int, metavar="T",
                   help="samples the stream was built for, a run's total (megatron's shuffle depends on it; "
                        "default N + 1)")
    p.add_argument("--stages", metavar="OUT_DIR",
                   help="the pipeline run's folder: add each stage's decision on every document; an origin "
                        "not in the shards is traced to the stage that dropped it")
    p.add_argument("--page", action="store_true",
                   help="with --origin: re-read its WARC record (one Range request) and print its page, from "
                        "the file the extract stage of --stages read, or from --warc")
    p.add_argument("--warc", metavar="WHERE",
                   help="where the WARC file of --origin is (a folder, s3:// prefix, https:// base, or the "
                        "file); implies --page")
    p.add_argument("--lines", type=int, default=3, help="first lines of each text to print (default 3)")
    p.add_argument("--json", action="store_true", help='print one JSON object: {"sample": N, "documents": [...]}')
    p.set_defaults(run=_locate)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
