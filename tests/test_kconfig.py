"""A kernel configuration: .config reading, Kbuild's files, conditionals decided."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gfpcheck.extract import extract_file
from gfpcheck.facts import CALL_NAME, call_sites
from gfpcheck.kconfig import KconfigError, built_sources, load_config
from gfpcheck.kconfig.conditions import apply_config, constant_atom, evaluate, preprocessor_atom
from gfpcheck.kconfig.dotconfig import parse_config
from gfpcheck.pipeline import ScanOptions, scan

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "kconfig"
CONFIG = parse_config("CONFIG_A=y\nCONFIG_M=m\n# CONFIG_N is not set\nCONFIG_HZ=250\nCONFIG_S=\"text\"\n", "test")


@pytest.mark.parametrize("expression, value", [
    ("defined(CONFIG_A)", 1),
    ("defined CONFIG_M", 0),  # =m defines CONFIG_M_MODULE, not CONFIG_M
    ("defined(CONFIG_M_MODULE)", 1),
    ("CONFIG_N", 0),
    ("CONFIG_HZ >= 100 && CONFIG_HZ < 1000", 1),
    ("IS_ENABLED(CONFIG_M) && !IS_BUILTIN(CONFIG_M)", 1),
    ("IS_REACHABLE(CONFIG_N)", 0),
    ("defined(CONFIG_N) && defined(MODULE)", 0),  # one side decides
    ("defined(MODULE) || CONFIG_A", 1),
    ("!defined(CONFIG_N) && defined(MODULE)", None),  # include guards and MODULE are unknown
    ("LINUX_VERSION_CODE > 3", None),
])
def test_preprocessor_conditions_are_decided_from_the_config(expression, value):
    assert evaluate(expression, preprocessor_atom(CONFIG)) == value


@pytest.mark.parametrize("expression, value", [
    ("0", 0), ("!1", 0), ("(1)", 1), ("0 && foo(x)", 0), ("a->b || 1", 1), ("1 && a->b", None), ("x + 1", None),
])
def test_c_conditions_are_constant_only_when_their_numbers_decide(expression, value):
    assert evaluate(expression, constant_atom) == value


def test_dead_branches_are_blanked_in_place():
    source = (b"#ifndef GUARD\n#ifdef CONFIG_N\nint dead(void);\n#elif defined(CONFIG_A) && \\\n  1\n"
              b"int live(void) { if (IS_ENABLED(CONFIG_N)) x(); }\n#else\nint dead2(void);\n#endif\n"
              b"#if CONFIG_M\n# if FOO\nint nested;\n# endif\n#endif\n#endif\n")
    out = apply_config(source, CONFIG)
    assert len(out) == len(source) and out.count(b"\n") == source.count(b"\n")
    text = out.decode()
    assert "dead" not in text and "nested" not in text and "# if FOO" not in text
    assert "int live(void) { if (0" in text and "IS_ENABLED" not in text
    assert text.count("#endif") == 3  # the live groups keep their directives
    assert text.startswith("#ifndef GUARD\n")


def test_switches_nothing_defines_are_undefined_and_others_unknown():
    source = (b"//#define SELF_CHECK\n/* #define TRACE_ALL */\n#define TRACE_ALL 1\n"
              b"#ifdef SELF_CHECK\nint check;\n#endif\n#if defined(TRACE_ALL)\nint trace;\n#endif\n"
              b"#ifdef DEBUG\nint debug;\n#else\nint quiet;\n#endif\n#ifndef FOO\nint foo;\n#endif\n")
    text = apply_config(source, CONFIG, frozenset({"DEBUG"})).decode()
    # commented out and never defined: off; commented out once but defined: unknown, kept
    assert "int check" not in text and "int trace" in text
    # a build switch no Makefile passes: off, its #else live; an unknown name keeps its branch
    assert "int debug" not in text and "int quiet" in text and "int foo" in text
    assert "int debug" in apply_config(source, CONFIG).decode()  # not a switch here: unknown


def test_a_build_switch_is_off_unless_a_makefile_at_or_above_the_file_passes_it(rules):
    configured = rules.with_kconfig(CONFIG, frozenset({("drivers/usb/", "DEBUG")}))
    assert "DEBUG" in configured.switches_off("drivers/mmc/host/sdmmc.c")
    assert "DEBUG" not in configured.switches_off("drivers/usb/core/hub.c")
    assert configured.digest != rules.with_kconfig(CONFIG).digest


def test_the_live_branches_are_what_the_report_at_the_call_covers(rules):
    """demo_debug_dump()'s allocations are reported once, at demo_create()'s call:
    its covers are exactly the allocations the configuration builds."""
    result = scan(ScanOptions(paths=(FIXTURE,), root=FIXTURE, jobs=1, kconfig=load_config(FIXTURE / ".config")),
                  rules=rules)
    (call,) = [f for f in result.findings if (f.file, f.line) == ("fs/demo/inode.c", 59)]
    assert [(c.file, c.line) for c in call.covers] == [("fs/demo/inode.c", 17), ("fs/demo/inode.c", 30),
                                                       ("fs/demo/inode.c", 35)]


def test_a_constant_if_prunes_its_dead_branch(rules):
    source = b"""
void f(void)
{
	if (IS_ENABLED(CONFIG_N) && ready())
		gone();
	else
		kept();
	if (IS_ENABLED(CONFIG_A))
		taken();
	else
		skipped();
}
"""
    facts = extract_file("f.c", source, rules.with_kconfig(CONFIG))
    names = [call[CALL_NAME] for call in call_sites(facts.functions[0])]
    assert names == ["ready", "kept", "taken"]  # the condition itself is kept as written
    unconfigured = [call[CALL_NAME] for call in call_sites(extract_file("f.c", source, rules).functions[0])]
    assert "gone" in unconfigured and "skipped" in unconfigured


def test_config_files_are_read_or_refused_in_one_line(tmp_path):
    assert load_config(FIXTURE / ".config").value("CONFIG_DEMO_FS") == "m"
    with pytest.raises(KconfigError, match="not a kernel configuration"):
        load_config(FIXTURE / "fs" / "Makefile")
    with pytest.raises(KconfigError, match="cannot read"):
        load_config(tmp_path / "missing")
    # The same settings in another order are the same build.
    assert parse_config("CONFIG_B=y\nCONFIG_A=m\n", "x").digest == parse_config("CONFIG_A=m\nCONFIG_B=y\n", "y").digest


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def _built(root: Path, config_text: str) -> set[str]:
    sources = [p.relative_to(root).as_posix() for p in root.rglob("*.c")]
    built = built_sources(root, parse_config(config_text, "t"), "x86", sources,
                          lambda rel: (root / rel).read_bytes(), lambda d: False)
    return {s for s in sources if built.builds(s)}


def test_kbuild_follows_objects_variables_conditionals_and_includes(tmp_path):
    root = _tree(tmp_path, {
        "fs/Makefile": "obj-$(CONFIG_FOO) += foo/\nobj-$(CONFIG_BAR) += bar/\n",
        "fs/foo/Makefile": ("obj-$(CONFIG_FOO) := foo.o\nparts := a.o \\\n\tb.o\n"
                            "foo-y += $(parts) $(addprefix lib/, c.o)\nfoo-$(CONFIG_D) += d.o\n"
                            "ifeq ($(CONFIG_E),y)\nfoo-y += e.o\nelse\nfoo-y += noe.o\nendif\n"
                            "include $(srctree)/fs/foo/Makefile.extra\n"
                            "$(obj)/gen.o: $(obj)/gen.h\n\t$(call cmd,gen)\n"),
        "fs/foo/Makefile.extra": "foo-y += extra.o\n",
        **{f"fs/foo/{n}.c": "" for n in ("a", "b", "d", "e", "noe", "extra", "orphan")},
        "fs/foo/lib/c.c": "",
        "fs/foo/a.c": '#include "inc.c"\n#ifdef CONFIG_FOO_TESTS\n#include "a-test.c"\n#endif\n',
        "fs/foo/inc.c": "",
        "fs/foo/a-test.c": "",  # included only under an unset option
        "fs/bar/bar.c": "",
        "fs/bar/Makefile": "obj-y += bar.o\n",
        "mm/Makefile": "obj-y := slab.o\n",
        "mm/slab.c": "",
        "mm/unlisted.c": "",
        "virt/plain/x.c": "",  # no Makefile anywhere up to a top-level directory: read whole
        "virt/sub/Makefile": "obj-$(CONFIG_NONE) += y.o\n",  # ... but a Makefile below one still decides
        "virt/sub/y.c": "",
    })
    built = _built(root, "CONFIG_FOO=m\n# CONFIG_BAR is not set\nCONFIG_E=y\n")
    assert built == {"fs/foo/a.c", "fs/foo/b.c", "fs/foo/lib/c.c", "fs/foo/e.c", "fs/foo/extra.c", "fs/foo/inc.c",
                     "mm/slab.c", "virt/plain/x.c"}
    other = _built(root, "CONFIG_FOO=y\nCONFIG_BAR=y\nCONFIG_D=y\n# CONFIG_E is not set\n")
    assert {"fs/foo/d.c", "fs/foo/noe.c", "fs/bar/bar.c"} <= other and "fs/foo/e.c" not in other


def test_each_built_file_is_in_the_object_kbuild_links_it_into(tmp_path):
    root = _tree(tmp_path, {
        "drivers/md/Makefile": ("dm-cache-y += dm-cache-target.o dm-cache-metadata.o\n"
                                "obj-$(CONFIG_DM_CACHE) += dm-cache.o\nobj-$(CONFIG_DM_BUFIO) += dm-bufio.o\n"
                                "obj-y += persistent-data/\n"),
        "drivers/md/persistent-data/Makefile": "obj-y += dm-persistent-data.o\ndm-persistent-data-objs := bm.o\n",
        **{f"drivers/md/{n}.c": "" for n in ("dm-cache-target", "dm-bufio", "persistent-data/bm")},
        "drivers/md/dm-cache-metadata.c": '#include "dm-cache-inc.c"\n',
        "drivers/md/dm-cache-inc.c": "",
    })
    sources = [p.relative_to(root).as_posix() for p in root.rglob("*.c")]
    built = built_sources(root, parse_config("CONFIG_DM_CACHE=m\nCONFIG_DM_BUFIO=m\n", "t"), "x86", sources,
                          lambda rel: (root / rel).read_bytes(), lambda d: False)
    # a file that is an object of its own has no entry: its directory is its unit
    assert dict(built.units) == {"drivers/md/dm-cache-target.c": "drivers/md/dm-cache",
                                 "drivers/md/dm-cache-metadata.c": "drivers/md/dm-cache",
                                 "drivers/md/dm-cache-inc.c": "drivers/md/dm-cache",
                                 "drivers/md/persistent-data/bm.c": "drivers/md/persistent-data/dm-persistent-data"}


def test_a_changed_config_is_a_different_scan_with_the_same_cache(tmp_path, rules):
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURE, tree)
    cache = tmp_path / "cache"
    configured = load_config(tree / ".config")
    acl_off = parse_config((tree / ".config").read_text().replace("CONFIG_DEMO_FS_POSIX_ACL=y",
                                                                  "# CONFIG_DEMO_FS_POSIX_ACL is not set"), "off")

    def files_with_findings(kconfig):
        result = scan(ScanOptions(paths=(tree,), root=tree, jobs=1, cache_dir=cache, kconfig=kconfig), rules=rules)
        return sorted({f.file for f in result.findings})

    assert "fs/demo/acl.c" in files_with_findings(configured)
    assert "fs/demo/acl.c" not in files_with_findings(acl_off)
    everything = files_with_findings(None)
    assert "fs/unbuilt/super.c" in everything and "fs/demo/ref-verify.c" in everything
    # without a configuration every branch is read, -DDEBUG or not
    assert "drivers/demo/quiet/quiet.c" in everything
    assert files_with_findings(configured) == [f for f in everything if f not in
                                               ("fs/unbuilt/super.c", "fs/demo/ref-verify.c", "fs/demo/stale.c",
                                                "fs/demo/verify-extra.c", "drivers/demo/quiet/quiet.c")]


def test_the_trees_own_config_is_used_and_said(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURE, tree)
    run = subprocess.run([sys.executable, "-m", "gfpcheck", "scan", "--no-cache", str(tree)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1
    assert "using the kernel configuration" in run.stderr and "not built with this configuration" in run.stderr
    assert "ref-verify.c" not in run.stdout
    bad = subprocess.run([sys.executable, "-m", "gfpcheck", "scan", "--no-cache", "--kconfig",
                          str(tree / "fs" / "Makefile"), str(tree)], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a kernel configuration" in bad.stderr


def test_files_at_the_root_are_not_kbuilds_to_leave_out(tmp_path, rules):
    root = _tree(tmp_path, {"demo.c": (FIXTURE / "fs" / "demo" / "super.c").read_text(), "sub/Makefile": "obj-y :=\n",
                            "sub/gone.c": (FIXTURE / "fs" / "demo" / "super.c").read_text()})
    result = scan(ScanOptions(paths=(root,), root=root, jobs=1, kconfig=CONFIG), rules=rules)
    assert sorted({f.file for f in result.findings}) == ["demo.c"]
    assert [s.path for s in result.skipped] == ["sub/gone.c"]


def test_what_kbuild_builds_is_kept_until_a_makefile_or_directory_it_read_changes(tmp_path, rules, monkeypatch):
    from gfpcheck import pipeline

    evaluated = []
    monkeypatch.setattr(pipeline, "built_sources", lambda *args: evaluated.append(1) or built_sources(*args))
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURE, tree)
    cache = tmp_path / "cache"
    configured = load_config(tree / ".config")

    def scanned():
        result = scan(ScanOptions(paths=(tree,), root=tree, jobs=1, cache_dir=cache, kconfig=configured),
                      rules=rules)
        return sorted({f.file for f in result.findings}), sorted(s.path for s in result.skipped)

    findings, skipped = scanned()
    assert "fs/demo/acl.c" in findings and "fs/unbuilt/super.c" in skipped
    assert scanned() == (findings, skipped) and len(evaluated) == 1  # from the cache: the same
    makefile = tree / "fs" / "demo" / "Makefile"
    makefile.write_text(makefile.read_text().replace("demo-$(CONFIG_DEMO_FS_POSIX_ACL) += acl.o\n", ""))
    findings, skipped = scanned()
    assert "fs/demo/acl.c" not in findings and "fs/demo/acl.c" in skipped
    (tree / "fs" / "Makefile").write_text("obj-y += demo/ unbuilt/\n")
    (tree / "fs" / "unbuilt" / "Makefile").write_text("obj-y += super.o\n")
    findings, skipped = scanned()
    assert "fs/unbuilt/super.c" in findings
    # a directory with no Makefile is read whole: one appearing is seen
    (tree / "drivers" / "demo" / "loud").mkdir()
    (tree / "drivers" / "demo" / "loud" / "loud.c").write_text(
        "int loud_commit(struct btrfs_trans_handle *trans)\n{\n\treturn kmalloc(8, GFP_KERNEL) != 0;\n}\n")
    (tree / "drivers" / "demo" / "Makefile").write_text("obj-y\t+= quiet/ chatty/ loud/\n")
    assert "drivers/demo/loud/loud.c" in scanned()[0]
    assert len(evaluated) == 4
