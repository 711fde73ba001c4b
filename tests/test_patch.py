"""Unified diffs parsed and applied in memory, and the lines a change touches."""

from __future__ import annotations

import pytest

from gfpcheck.gate import changed_lines
from gfpcheck.gate.patch import PatchError, apply, parse

FILE = b"".join(b"line %d\n" % n for n in range(1, 11))


def reader(files: dict[str, bytes]):
    return files.get


def test_modify_insert_and_delete_in_one_file():
    patch = b"""diff --git a/a.c b/a.c
index 0000000..1111111 100644
--- a/a.c
+++ b/a.c
@@ -2,3 +2,3 @@
 line 2
-line 3
+line three
 line 4
@@ -6,0 +7,2 @@
+new 1
+new 2
@@ -9,2 +10,1 @@
-line 9
 line 10
"""
    out = apply(parse(patch), reader({"a.c": FILE}))
    assert out["a.c"].splitlines() == [b"line 1", b"line 2", b"line three", b"line 4", b"line 5", b"line 6",
                                       b"new 1", b"new 2", b"line 7", b"line 8", b"line 10"]


def test_hunk_applies_at_an_offset_like_patch():
    shifted = b"extra\nextra\n" + FILE
    patch = b"--- a/a.c\n+++ b/a.c\n@@ -5,3 +5,3 @@\n line 5\n-line 6\n+line six\n line 7\n"
    assert b"line six\n" in apply(parse(patch), reader({"a.c": shifted}))["a.c"]


def test_new_and_deleted_files_and_strip_level():
    patch = b"""--- /dev/null
+++ b/fs/new.c
@@ -0,0 +1,2 @@
+int f(void)
+{ return 0; }
--- a/old.c
+++ /dev/null
@@ -1,1 +0,0 @@
-gone
"""
    out = apply(parse(patch), reader({"old.c": b"gone\n"}))
    assert out == {"fs/new.c": b"int f(void)\n{ return 0; }\n", "old.c": None}
    plain = b"--- x/y/a.c\n+++ x/y/a.c\n@@ -1 +1 @@\n-line 1\n+one\n"
    assert list(apply(parse(plain, strip=2), reader({"a.c": FILE}))) == ["a.c"]


def test_no_newline_at_end_of_file():
    patch = b"--- a/a.c\n+++ b/a.c\n@@ -1,1 +1,1 @@\n-last\n\\ No newline at end of file\n+last;\n"
    assert apply(parse(patch), reader({"a.c": b"last"}))["a.c"] == b"last;\n"


@pytest.mark.parametrize("patch, message", [
    (b"just some text\n", "no file changes found"),
    (b"--- a/a.c\n+++ b/a.c\n@@ bogus @@\n", "malformed hunk header"),
    (b"--- a/a.c\n+++ b/a.c\n@@ -1,3 +1,3 @@\n line 1\n", "cut short"),
    (b"--- a/a.c\n+++ b/a.c\n@@ -1,2 +1,2 @@\n line 1\n?line 2\n", "unexpected line"),
    (b"@@ -1 +1 @@\n-a\n+b\n", "before any"),
    (b"--- a/../etc/x.c\n+++ b/../etc/x.c\n@@ -1 +1 @@\n-a\n+b\n", "outside the tree"),
])
def test_malformed_patches_say_where(patch, message):
    with pytest.raises(PatchError, match=message):
        parse(patch)


@pytest.mark.parametrize("patch, files, message", [
    (b"--- a/a.c\n+++ b/a.c\n@@ -1,1 +1,1 @@\n-not there\n+x\n", {"a.c": FILE}, "hunk #1 .* does not apply"),
    (b"--- a/b.c\n+++ b/b.c\n@@ -1,1 +1,1 @@\n-x\n+y\n", {"a.c": FILE}, "no such file"),
    (b"--- /dev/null\n+++ b/a.c\n@@ -0,0 +1 @@\n+x\n", {"a.c": FILE}, "already exists"),
])
def test_patches_that_do_not_apply(patch, files, message):
    with pytest.raises(PatchError, match=message):
        apply(parse(patch), reader(files))


def test_changed_lines_are_head_side_and_mark_removals():
    before = b"a\nb\nc\nd\n"
    assert changed_lines(before, b"a\nB\nc\nd\n") == {2}
    assert changed_lines(before, b"a\nb\nnew\nc\nd\n") == {3}
    assert changed_lines(before, b"a\nc\nd\n") == {2}  # the line now standing where b was
    assert changed_lines(before, before) == frozenset()
    assert changed_lines(None, b"x\ny\n") == {1, 2}
