#!/usr/bin/env python3
"""Mine candidate allocation-context fixes between two kernel trees.

    python bench/corpus/mine.py                       # 6.1 vs 6.12 under ~/.cache/gfpcheck-bench/trees
    python bench/corpus/mine.py --old A --new B --out cands.json --dirs fs block mm

For every .c file present in both trees (and pairs of files that were only
renamed: the same base name, unique among the files that exist on one side
only), the functions defined in both are compared:

  mask-change     an allocation call (or any call with a gfp argument) whose
                  gfp argument text changed, matched by callee name and
                  position among the function's gfp-taking calls;
  scope-added     more memalloc_{nofs,noio,flags}_save() calls in the new tree;
  scope-removed   fewer of them;
  restore-added   more memalloc_*_restore() calls, with no more saves.

The output is a JSON list of candidates (file, function, lines in both trees,
old/new mask text, the mask classes) on --out (default
~/.cache/gfpcheck-bench/candidates.json, never inside the repository); counts
go to stdout.  Standard library only; functions are found at regex level,
relying on the kernel style of a function body opening and closing with a
brace in column 0.  Candidates are raw: bench/corpus/cases.yaml holds the
curated ones.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import json
import os
import re
import sys
from pathlib import Path

BENCH = Path(os.environ.get("GFPCHECK_BENCH_DIR") or Path.home() / ".cache" / "gfpcheck-bench")

# Allocators whose gfp argument is implied (GFP_KERNEL); the others are found
# by their gfp argument.
IMPLICIT_KERNEL = {
    "vmalloc", "vzalloc", "vmalloc_user", "vmalloc_node", "vzalloc_node", "vmalloc_32",
    "vmalloc_array", "vcalloc", "crypto_alloc_shash", "crypto_alloc_ahash", "crypto_alloc_skcipher",
    "crypto_alloc_aead", "crypto_alloc_akcipher",
}
ALLOCATOR_PREFIXES = (
    "kmalloc", "__kmalloc", "kzalloc", "kcalloc", "krealloc", "kmemdup", "kstrdup", "kstrndup",
    "kasprintf", "kvasprintf", "kmem_cache_alloc", "kmem_cache_zalloc", "kvmalloc", "kvzalloc",
    "kvcalloc", "kvrealloc", "vmalloc", "__vmalloc", "vzalloc", "alloc_page", "__alloc_page",
    "__get_free_page", "get_zeroed_page", "folio_alloc", "filemap_alloc_folio", "bio_alloc",
    "bio_kmalloc", "bio_clone", "mempool_alloc", "mempool_create", "radix_tree_preload",
    "idr_alloc", "ida_alloc", "xa_alloc", "xa_store", "xa_insert", "alloc_skb", "__alloc_skb",
    "crypto_alloc", "find_or_create_page", "grab_cache_page", "__filemap_get_folio",
    "pagecache_get_page", "kvasprintf", "sg_alloc_table", "alloc_workqueue", "posix_acl_alloc",
    "kobject_", "match_strdup", "bioset_init", "kmem_alloc", "kmem_zalloc", "kmem_realloc",
)
# Calls that compute a mask: their own gfp argument is not a site, and an
# argument made of such a call still counts as a mask argument.
MASK_HELPERS = {
    "mapping_gfp_constraint", "mapping_gfp_mask", "current_gfp_context", "memalloc_nofs_save",
    "memalloc_noio_save", "readahead_gfp_mask", "mapping_set_gfp_mask", "gfp_zone",
    "gfpflags_allow_blocking", "gfp_has_io_fs", "WARN_ON", "WARN_ON_ONCE", "BUG_ON",
    "unlikely", "likely", "gfp_migratetype",
}
KEYWORDS = {
    "if", "for", "while", "switch", "return", "sizeof", "typeof", "__typeof__", "do", "case",
    "defined", "__builtin_expect", "offsetof", "ARRAY_SIZE", "struct_size", "array_size",
    "_Generic", "__alignof__", "alignof",
}
ATTRIBUTES = {
    "__attribute__", "__printf", "__scanf", "__acquires", "__releases", "__must_hold",
    "__section", "__aligned", "__diag_ignore", "__no_sanitize_address", "__malloc",
    "__alloc_size", "__realloc_size", "__cold", "__weak", "__visible", "__nocfi",
    "__no_kcsan", "noinline", "__noreturn", "__init", "__exit", "__ref",
}
SAVE_RE = re.compile(r"\bmemalloc_(nofs|noio|flags|pin)_save\s*\(")
RESTORE_RE = re.compile(r"\bmemalloc_(nofs|noio|flags|pin)_restore\s*\(")
CALL_RE = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
GFP_RE = re.compile(r"gfp|\bKM_", re.IGNORECASE)
# XFS's 6.1 wrappers take KM_* flags (0 is GFP_KERNEL): index of that argument.
KMEM_FLAGS_ARG = {"kmem_alloc": 1, "kmem_zalloc": 1, "kmem_realloc": 2, "kmem_alloc_large": 1}
_LEX_RE = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.DOTALL)


def _blank(match: re.Match) -> str:
    text = match.group(0)
    if text.startswith('"'):
        return '""'
    if text.startswith("'"):
        return "' '"
    return "\n" * text.count("\n") or " "


def clean(source: str) -> list[str]:
    """Source lines with comments, strings and preprocessor lines blanked;
    line numbers are kept."""
    text = _LEX_RE.sub(_blank, source)
    lines = text.split("\n")
    in_directive = False
    for i, line in enumerate(lines):
        if in_directive or line.lstrip().startswith("#"):
            in_directive = line.rstrip().endswith("\\")
            lines[i] = ""
    return lines


def function_name(header: str) -> str | None:
    if "=" in header.split("(")[0]:
        return None
    for m in CALL_RE.finditer(header):
        name = m.group(1)
        if name in ATTRIBUTES or name in KEYWORDS:
            continue
        if re.fullmatch(r"(COMPAT_)?SYSCALL_DEFINE\d", name):
            arg = header[m.end():].split(",")[0].split(")")[0].strip()
            return ("compat_sys_" if name.startswith("COMPAT") else "sys_") + arg
        if re.fullmatch(r"[A-Z][A-Z0-9_]+", name):
            arg = header[m.end():].split(",")[0].split(")")[0].strip()
            return f"{name}({arg})"
        return name
    return None


def functions(lines: list[str]) -> dict[str, tuple[int, int]]:
    """name -> (first body line, last body line), 0-based, for functions whose
    body opens with '{' in column 0 (kernel style) or a header line ending in
    ') {' starting in column 0.  A repeated name (#ifdef variants) keeps its
    occurrence number: name#2."""
    out: dict[str, tuple[int, int]] = {}
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        opener = None
        if line.startswith("{"):
            opener = i
            j = i - 1
            header_lines = []
            while j >= 0:
                prev = lines[j].rstrip()
                if not prev.strip() or prev.endswith((";", "}")) or prev.startswith("}"):
                    break
                header_lines.insert(0, prev)
                j -= 1
            header = " ".join(header_lines)
        elif re.match(r"[A-Za-z_].*\)\s*\{\s*$", line) and not re.match(
                r"(struct|union|enum|if|for|while|switch|do)\b", line) and "=" not in line.split("(")[0]:
            opener = i
            header = line
        if opener is None or "(" not in header:
            i += 1
            continue
        # body ends at the next '}' in column 0
        k = opener + 1
        while k < n and not lines[k].startswith("}"):
            k += 1
        name = function_name(header)
        if name:
            key, c = name, 1
            while key in out:
                c += 1
                key = f"{name}#{c}"
            out[key] = (opener, min(k, n - 1))
        i = k + 1
    return out


def split_args(text: str, start: int) -> tuple[list[str], int] | None:
    """Top-level arguments of the call whose '(' is at text[start-1]."""
    depth, args, cur = 1, [], []
    i = start
    while i < len(text):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                args.append("".join(cur))
                return args, i
        elif ch == "," and depth == 1:
            args.append("".join(cur))
            cur = []
            i += 1
            continue
        elif ch == ";" and depth == 1:
            return None
        cur.append(ch)
        i += 1
    return None


def strip_calls(arg: str) -> str:
    """Remove nested calls other than mask helpers (and casts) from an argument."""
    out, i = [], 0
    for m in CALL_RE.finditer(arg):
        if m.start() < i:
            continue
        name = m.group(1)
        if name in MASK_HELPERS or "gfp" in name.lower() and name not in KEYWORDS:
            continue
        sa = split_args(arg, m.end())
        if not sa:
            continue
        out.append(arg[i:m.start()])
        i = sa[1] + 1
    out.append(arg[i:])
    return "".join(out)


def is_allocator(name: str) -> bool:
    return name in IMPLICIT_KERNEL or name.startswith(ALLOCATOR_PREFIXES)


def norm(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s*([|&~()])\s*", r"\1", text)
    while text.startswith("(") and text.endswith(")") and split_args(text, 1) and split_args(text, 1)[1] == len(text) - 1:
        text = text[1:-1]
    return text


def mask_class(mask: str) -> str:
    """A coarse class of a mask text: fs, nofs, noio, atomic, nowait, var."""
    m = mask.replace(" ", "")
    if m == "(implicitGFP_KERNEL)":
        return "fs"
    if re.search(r"~\(?__GFP_(IO|RECLAIM|DIRECT_RECLAIM)", m) or "GFP_NOIO" in m:
        return "noio"
    if "GFP_ATOMIC" in m:
        return "atomic"
    if "GFP_NOWAIT" in m:
        return "nowait"
    if re.search(r"~\(?[\w|]*__GFP_FS", m) or "GFP_NOFS" in m or "KM_NOFS" in m or "memalloc_nofs" in m:
        return "nofs"
    if m == "0" or re.fullmatch(r"KM_\w+(\|KM_\w+)*", m):
        return "fs"  # XFS kmem_* flags without KM_NOFS
    if re.search(r"\bGFP_(KERNEL|USER|HIGHUSER\w*|KERNEL_ACCOUNT|DMA\w*)\b", m):
        return "fs"
    return "var"


def gfp_calls(lines: list[str], first: int, last: int) -> list[tuple[str, str, int]]:
    """(callee, mask text, 0-based line) for each gfp-taking call in the body."""
    body = "\n".join(lines[first:last + 1])
    starts = [0]
    for line in lines[first:last + 1]:
        starts.append(starts[-1] + len(line) + 1)
    out = []
    for m in CALL_RE.finditer(body):
        name = m.group(1)
        if name in KEYWORDS or name in MASK_HELPERS or name.startswith(("memalloc_", "gfp")):
            continue
        if name in IMPLICIT_KERNEL:
            mask = "(implicit GFP_KERNEL)"
        else:
            sa = split_args(body, m.end())
            if not sa:
                continue
            masks = [a for a in sa[0] if GFP_RE.search(strip_calls(a))]
            if not masks and name in KMEM_FLAGS_ARG and len(sa[0]) > KMEM_FLAGS_ARG[name]:
                masks = [sa[0][KMEM_FLAGS_ARG[name]]]
            if not masks:
                continue
            mask = norm(masks[-1])
            if not is_allocator(name) and not re.search(r"GFP_|gfp|KM_", mask):
                continue
        lineno = first + _line_of(starts, m.start())
        out.append((name, mask, lineno))
    return out


def _line_of(starts: list[int], pos: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= pos:
            lo = mid
        else:
            hi = mid - 1
    return lo


def related(a: str, b: str) -> bool:
    if a == b:
        return True
    def strip(name: str) -> str:
        return re.sub(r"^_+|_noprof$|_node$", "", name)

    return strip(a) == strip(b) or (is_allocator(a) and is_allocator(b))


def compare_file(rel_old: str, rel_new: str, old_src: str, new_src: str) -> list[dict]:
    lo, ln = clean(old_src), clean(new_src)
    fo, fn = functions(lo), functions(ln)
    out = []
    for name in fo.keys() & fn.keys():
        (a0, a1), (b0, b1) = fo[name], fn[name]
        old_body = lo[a0:a1 + 1]
        new_body = ln[b0:b1 + 1]
        if old_body == new_body:
            continue
        base = {"file_6_1": rel_old, "file_6_12": rel_new, "function": name}
        # (a) mask changes
        co, cn = gfp_calls(lo, a0, a1), gfp_calls(ln, b0, b1)
        sm = difflib.SequenceMatcher(None, [c[0] for c in co], [c[0] for c in cn], autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal" or tag == "replace":
                for (ca, ma, la), (cb, mb, lb) in zip(co[i1:i2], cn[j1:j2]):
                    if ma == mb or not related(ca, cb):
                        continue
                    out.append(dict(base, kind="mask-change", line_6_1=la + 1, line_6_12=lb + 1,
                                    callee_6_1=ca, callee_6_12=cb, old=ma, new=mb,
                                    class_6_1=mask_class(ma), class_6_12=mask_class(mb),
                                    class_changed=mask_class(ma) != mask_class(mb)))
        # (b) scopes, (c) restores
        so = [i for i, line in enumerate(old_body) if SAVE_RE.search(line)]
        sn = [i for i, line in enumerate(new_body) if SAVE_RE.search(line)]
        ro = [i for i, line in enumerate(old_body) if RESTORE_RE.search(line)]
        rn = [i for i, line in enumerate(new_body) if RESTORE_RE.search(line)]
        if len(sn) != len(so):
            kind = "scope-added" if len(sn) > len(so) else "scope-removed"
            cand = dict(base, kind=kind, saves_6_1=len(so), saves_6_12=len(sn),
                        restores_6_1=len(ro), restores_6_12=len(rn))
            if sn and kind == "scope-added":
                first_new = sn[0] if not so else next((s for s in sn if new_body[s] not in [old_body[x] for x in so]), sn[0])
                cand["line_6_12"] = b0 + first_new + 1
                cand["scope_api"] = SAVE_RE.search(new_body[first_new]).group(1)
                cand["line_6_1"] = _hint_6_1(new_body, old_body, first_new, a0)
                inside = [c for c in cn if c[2] >= b0 + first_new]
                cand["calls_after_save_6_12"] = [f"{c[0]}({c[1]}):{c[2] + 1}" for c in inside[:6]]
            else:
                cand["line_6_1"] = a0 + (so[0] if so else 0) + 1
                cand["line_6_12"] = b0 + 1
                if so:
                    cand["scope_api"] = SAVE_RE.search(old_body[so[0]]).group(1)
            out.append(cand)
        elif len(rn) > len(ro):
            extra = [r for r in rn if new_body[r].strip() not in {old_body[x].strip() for x in ro}] or rn
            out.append(dict(base, kind="restore-added", line_6_1=a0 + 1, line_6_12=b0 + extra[0] + 1,
                            saves_6_1=len(so), saves_6_12=len(sn), restores_6_1=len(ro),
                            restores_6_12=len(rn)))
    return out


def _hint_6_1(new_body: list[str], old_body: list[str], save_idx: int, a0: int) -> int:
    """The 6.1 line of the first call that follows the new save in 6.12."""
    for line in new_body[save_idx + 1:]:
        for m in CALL_RE.finditer(line):
            name = m.group(1)
            if name in KEYWORDS or name.startswith("memalloc_"):
                continue
            for i, old in enumerate(old_body):
                if re.search(rf"\b{re.escape(name)}\s*\(", old):
                    return a0 + i + 1
    return a0 + 1


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace")


def interesting(data: bytes) -> bool:
    return b"gfp" in data or b"GFP" in data or b"memalloc_" in data or b"vmalloc" in data


def pairs(old: Path, new: Path, dirs: list[str]) -> tuple[list[tuple[str, str]], int]:
    def walk(root: Path) -> set[str]:
        out = set()
        tops = dirs or [""]
        for top in tops:
            for dirpath, dirnames, filenames in os.walk(root / top):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel = os.path.relpath(dirpath, root)
                for f in filenames:
                    if f.endswith(".c"):
                        out.add(os.path.normpath(os.path.join(rel, f)))
        return out
    a, b = walk(old), walk(new)
    both = sorted(a & b)
    only_a = collections.defaultdict(list)
    only_b = collections.defaultdict(list)
    for p in a - b:
        only_a[os.path.basename(p)].append(p)
    for p in b - a:
        only_b[os.path.basename(p)].append(p)
    renamed = [(only_a[k][0], only_b[k][0]) for k in only_a
               if len(only_a[k]) == 1 and len(only_b.get(k, ())) == 1]
    return [(p, p) for p in both] + sorted(renamed), len(renamed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", type=Path, default=BENCH / "trees" / "linux-source-6.1")
    ap.add_argument("--new", type=Path, default=BENCH / "trees" / "linux-source-6.12")
    ap.add_argument("--out", type=Path, default=BENCH / "candidates.json")
    ap.add_argument("--dirs", nargs="*", default=[], help="restrict to these top directories (default: whole tree)")
    args = ap.parse_args(argv)
    for root in (args.old, args.new):
        if not (root / "Makefile").is_file():
            print(f"mine: {root} is not an unpacked kernel tree", file=sys.stderr)
            return 2
    file_pairs, n_renamed = pairs(args.old, args.new, args.dirs)
    cands: list[dict] = []
    compared = 0
    for rel_old, rel_new in file_pairs:
        try:
            d_old = (args.old / rel_old).read_bytes()
            d_new = (args.new / rel_new).read_bytes()
        except OSError:
            continue
        if d_old == d_new or not (interesting(d_old) or interesting(d_new)):
            continue
        compared += 1
        cands.extend(compare_file(rel_old, rel_new, d_old.decode("utf-8", "replace"),
                                  d_new.decode("utf-8", "replace")))
    cands.sort(key=lambda c: (c["file_6_12"], c["function"], c.get("line_6_12", 0)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(cands, indent=1) + "\n")
    kinds = collections.Counter(c["kind"] for c in cands)
    trans = collections.Counter(f"{c['class_6_1']}->{c['class_6_12']}" for c in cands
                                if c["kind"] == "mask-change" and c["class_changed"])
    print(f"file pairs: {len(file_pairs)} ({n_renamed} renamed), differing and compared: {compared}")
    print(f"candidates: {len(cands)} -> {args.out}")
    for k, v in sorted(kinds.items()):
        print(f"  {k}: {v}")
    print(f"  mask-change with a class change: {sum(trans.values())}")
    for k, v in trans.most_common():
        print(f"    {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
