from __future__ import annotations

from gfpcheck.extract import extract_file
from gfpcheck.facts import (
    CALL_ARGS,
    CALL_BASE,
    CALL_KIND,
    CALL_NAME,
    CALL_PATH,
    CALL_RESULT,
    EV_GOTO,
    EV_IF,
    EV_LABEL,
    EV_RETURN,
    FIELD,
    call_sites,
    decode,
    encode,
    flow_events,
)


def functions(rules, source: str, path: str = "fs/demo/x.c"):
    facts = extract_file(path, source.encode(), rules)
    return facts, {f.name: f for f in facts.functions}


def test_definitions_params_and_static(rules):
    _, funcs = functions(rules, """
static int __init demo_init(void) { return 0; }
struct btrfs_trans_handle *demo_start(struct btrfs_trans_handle *trans, handle_t *h, gfp_t gfp,
                                      int (*cb)(struct inode *, void *), const char __user *buf)
{
	return trans;
}
""")
    assert funcs["demo_init"].static
    start = funcs["demo_start"]
    assert not start.static and start.returns_pointer
    assert [p[:3] for p in start.params] == [
        ("trans", "struct btrfs_trans_handle", 1), ("h", "handle_t", 1), ("gfp", "gfp_t", 0),
        ("cb", "", 1), ("buf", "char", 1)]


def test_entry_macros_become_named_functions(rules):
    _, funcs = functions(rules, """
SYSCALL_DEFINE3(open, const char __user *, filename, int, flags, umode_t, mode)
{
	return do_sys_open(AT_FDCWD, filename, flags, mode);
}
COMPAT_SYSCALL_DEFINE0(restart)
{
	return demo_restart();
}
""")
    sys_open = funcs["sys_open"]
    assert sys_open.entry
    assert [p[0] for p in sys_open.params] == ["filename", "flags", "mode"]
    assert [c[CALL_NAME] for c in call_sites(sys_open)] == ["do_sys_open"]
    assert funcs["compat_sys_restart"].entry


def test_calls_in_evaluation_order_with_arguments(rules):
    _, funcs = functions(rules, """
int f(struct foo *x, gfp_t gfp)
{
	int ret = outer(inner(x), GFP_KERNEL | __GFP_ZERO, &callback, gfp, x->y + 1);
	x->ops->run(x, 1);
	(*x->hook)(x);
	return ret;
}
""")
    calls = call_sites(funcs["f"])
    assert [c[CALL_NAME] for c in calls] == ["inner", "outer", "run", ""]
    outer = calls[1]
    assert outer[CALL_ARGS] == (None, "GFP_KERNEL | __GFP_ZERO", "callback", "gfp", None)
    assert outer[CALL_RESULT] == "ret"
    run = calls[2]
    assert run[CALL_KIND] == FIELD and run[CALL_BASE] == "x" and run[CALL_PATH] == ("ops",)
    assert funcs["f"].detail  # member calls and a literal mask need per-site analysis
    assert funcs["f"].callees == ("inner", "outer") and funcs["f"].callee_counts == (1, 1)


def test_function_like_macros_are_followed(rules):
    _, funcs = functions(rules, """
#define ext4_journal_start(inode, type, nblocks)			\\
	__ext4_journal_start((inode), __LINE__, (type), (nblocks), 0, 0)
#define NOT_A_CALL(x) ((x) << 3)
""", "fs/ext4/ext4_jbd2.h")
    macro = funcs["ext4_journal_start"]
    assert macro.macro
    assert [p[0] for p in macro.params] == ["inode", "type", "nblocks"]
    assert macro.detail and macro.callees == ()  # its one call is a rules begin API
    assert call_sites(macro)[0][CALL_NAME] == "__ext4_journal_start"
    assert call_sites(macro)[0][CALL_ARGS][:3] == ("inode", "__LINE__", "type")
    assert call_sites(macro)[0][2] == 3  # reported on the line of the call inside the body
    assert "NOT_A_CALL" not in funcs


def test_bindings_from_initializers_assignments_and_binders(rules):
    facts, funcs = functions(rules, """
static const struct file_operations demo_fops = {
	.read_iter	= demo_read,
	.owner		= THIS_MODULE,
	.release	= &demo_release,
};
static struct security_hook_list demo_hooks[] = {
	LSM_HOOK_INIT(inode_permission, demo_permission),
};
void demo_setup(struct thing *t)
{
	t->ops.cleanup = demo_cleanup;
}
""")
    by_function = {b.function: b for b in facts.bindings}
    assert by_function["demo_read"].struct == "struct file_operations"
    assert by_function["demo_read"].field == "read_iter"
    assert by_function["demo_release"].field == "release"
    assert "THIS_MODULE" not in by_function
    assert by_function["demo_permission"].key == "lsm:inode_permission"
    (runtime,) = funcs["demo_setup"].bindings
    assert (runtime.base, runtime.path, runtime.field, runtime.function) == ("t", ("ops",), "cleanup", "demo_cleanup")


def test_flow_events_and_mask_locals(rules):
    _, funcs = functions(rules, """
int f(void)
{
	gfp_t gfp = GFP_KERNEL;
	void *p;

	if (IS_ERR(x))
		goto out;
	gfp |= __GFP_NOWARN;
	p = kmalloc(8, gfp);
out:
	return -ENOMEM;
}
""")
    f = funcs["f"]
    kinds = [e[1] for e in flow_events(f)]
    assert EV_IF in kinds and EV_GOTO in kinds and EV_LABEL in kinds and EV_RETURN in kinds
    if_event = next(e for e in flow_events(f) if e[1] == EV_IF)
    assert if_event[5] == "(IS_ERR(x))"
    assert dict(f.mask_locals)["gfp"] == ("GFP_KERNEL", "gfp | (__GFP_NOWARN)")


def test_struct_members_typedefs_and_globals(rules):
    facts, _ = functions(rules, """
typedef struct jbd2_journal_handle handle_t;
typedef struct { int a; struct foo *inner; } anon_t;
struct file {
	const struct file_operations *f_op;
	union { struct inode *f_inode; };
};
static struct super_block *demo_sb;
""")
    structs = dict(facts.structs)
    assert dict(structs["struct file"]) == {"f_op": "struct file_operations", "f_inode": "struct inode"}
    assert dict(structs["anon_t"]) == {"inner": "struct foo"}
    assert dict(facts.typedefs)["handle_t"] == "struct jbd2_journal_handle"
    assert ("demo_sb", "struct super_block") in facts.globals


def test_bad_input_never_raises(rules):
    for data in (b"", b"\x00\x01\x02\xff\xfe garbage", "int f(void) { return ü; }".encode("latin-1"),
                 b"int f( { if (x { kmalloc(1, GFP_KERNEL); ", b"\xff" * 1000):
        facts = extract_file("weird.c", data, rules)
        assert facts.path == "weird.c"
    broken = extract_file("broken.c", b"int f(void) { if (x { g(); }", rules)
    assert broken.error_nodes


def test_encode_decode_round_trip(rules):
    facts, _ = functions(rules, """
static const struct file_operations demo_fops = { .read_iter = demo_read };
int f(struct foo *x) { if (x) return g(x, GFP_NOFS); x->ops->h(x); return 0; }
""")
    assert decode(encode(facts)) == facts


def test_do_while_macro_does_not_swallow_the_rest_of_the_file(rules):
    source = """
int walk(struct task_struct *leader)
{
	struct task_struct *task = leader;
	do {
		visit(task);
	} while_each_thread(leader, task);
	return 0;
}

int after(void)
{
	return kmalloc(8, GFP_KERNEL) != NULL;
}
"""
    facts, funcs = functions(rules, source)
    assert set(funcs) == {"walk", "after"} and facts.error_nodes == 0
    assert [c[CALL_NAME] for c in call_sites(funcs["walk"])] == ["visit"]
    after = funcs["after"]
    assert (after.line, [c[CALL_NAME] for c in call_sites(after)]) == (11, ["kmalloc"])


def test_define_macros_name_functions_that_are_not_entry_points(rules):
    source = """
static CLOSURE_CALLBACK(flush_work)
{
	kfree(kmalloc(8, GFP_NOFS));
}

SYSCALL_DEFINE1(demo, int, fd)
{
	return 0;
}
"""
    _, funcs = functions(rules, source)
    assert set(funcs) == {"flush_work", "sys_demo"}
    assert not funcs["flush_work"].entry and funcs["sys_demo"].entry



def test_facts_keep_source_order_whatever_order_the_query_yields(rules):
    """The query cursor yields the field assignment of line 14 after that of line 15
    here (its order follows the parser's history too); facts must not."""
    source = """
static void setup(unsigned long input, unsigned long output)
{
	unsigned long init_size = params->hdr.init_size;
	u64 start, size;

	ranges[ZO].start = input;
	ranges[ZO].size = (output + init_size) - input;

	start  = (u64)params->ext_image << 32;
	start |= params->hdr.image;
	size  = (u64)params->ext_size << 32;
	size |= params->hdr.size;
	ranges[RD].start = start;
	ranges[RD].size = size;
}
"""
    _, funcs = functions(rules, source)
    assert [b.line for b in funcs["setup"].bindings] == [7, 14, 15]


def test_nested_initialisers_name_the_declared_struct_and_the_members_between(rules):
    facts, _ = functions(rules, """
static struct elevator_type mq_deadline = {
	.ops = {
		.init_sched	= dd_init_sched,
		.exit_sched	= dd_exit_sched,
	},
	.attrs.show	= dd_show,
	.elevator_name	= "mq-deadline",
};
void setup(void)
{
	struct thing t = { .inner = { .run = t_run } };
}
static struct { struct anon_ops o; } anon = { .o = { .run = anon_run } };
""", "block/mq-deadline.c")
    by_function = {b.function: b for b in facts.bindings}
    init = by_function["dd_init_sched"]
    assert (init.struct, init.path, init.field, init.line) == ("struct elevator_type", ("ops",), "init_sched", 4)
    assert by_function["dd_exit_sched"].path == ("ops",)
    show = by_function["dd_show"]
    assert (show.struct, show.path, show.field) == ("struct elevator_type", ("attrs",), "show")
    assert (by_function["t_run"].struct, by_function["t_run"].path) == ("struct thing", ("inner",))
    assert (by_function["anon_run"].struct, by_function["anon_run"].path) == ("", ())  # nothing names its struct


def test_arrays_of_structs_and_compound_literals_are_typed(rules):
    facts, _ = functions(rules, """
static const struct foo_ops tbl[] = {
	{ .f = first_f },
	[2] = { .f = third_f },
};
int use(void)
{
	return run(&(struct foo_ops){ .f = literal_f, .nested = { .g = literal_g } });
}
""")
    typed = {b.function: (b.struct, b.path, b.field) for b in facts.bindings}
    assert typed == {
        "first_f": ("struct foo_ops", (), "f"),
        "third_f": ("struct foo_ops", (), "f"),
        "literal_f": ("struct foo_ops", (), "f"),
        "literal_g": ("struct foo_ops", ("nested",), "g"),
    }


QUEUE_ENTRIES = r"""
#define QUEUE_RO_ENTRY(_prefix, _name)			\
static struct queue_sysfs_entry _prefix##_entry = {	\
	.attr	= { .name = _name, .mode = 0444 },	\
	.show	= _prefix##_show,			\
};

#define QUEUE_RW_ENTRY(_prefix, _name)			\
static struct queue_sysfs_entry _prefix##_entry = {	\
	.attr	= { .name = _name, .mode = 0644 },	/* rw */ \
	.show	= _prefix##_show,			\
	.store	= _prefix##_store,			\
}

QUEUE_RW_ENTRY(queue_requests, "nr_requests");
/* QUEUE_RW_ENTRY(queue_commented, "commented"); */
QUEUE_RO_ENTRY(queue_ra,
	       "read_ahead_kb");

static void not_file_scope(void)
{
	QUEUE_RW_ENTRY(queue_inside, "inside");
}
"""


def test_tables_built_by_token_pasting_macros_bind_on_the_invocation_line(rules):
    facts, _ = functions(rules, QUEUE_ENTRIES, "block/blk-sysfs.c")
    bound = [(b.line, b.function, b.struct, b.field) for b in facts.bindings]
    assert bound == [
        (15, "queue_requests_show", "struct queue_sysfs_entry", "show"),
        (15, "queue_requests_store", "struct queue_sysfs_entry", "store"),
        (17, "queue_ra_show", "struct queue_sysfs_entry", "show"),
    ]
    # Without `##` nothing is expanded: the body is never looked at.
    plain = QUEUE_ENTRIES.replace("_prefix##_", "_prefix")
    facts, _ = functions(rules, plain, "block/blk-sysfs.c")
    assert facts.bindings == ()


def test_macro_expansion_substitutes_pastes_and_counts_arguments(rules):
    from gfpcheck.extract.tables import _expand

    body = "static struct s p##_x = { .f = p##_fn, .name = #p, .g = q, __VA_ARGS__ };"
    assert _expand(body, ("p", "q"), True, ["a", "b_fn", ".h = h_fn"]) == \
        'static struct s a_x = { .f = a_fn, .name = "", .g = b_fn, .h = h_fn };'
    assert _expand(body, ("p", "q"), False, ["a"]) is None
    assert _expand(body, ("p", "q"), False, ["a", "b", "c"]) is None
    assert _expand('{ .s = "p##q" }', ("p", "q"), False, ["x", "y"]) == '{ .s = "p##q" }'


def test_a_name_a_macro_builds_is_no_function(rules):
    # genl_magic_func.h: `int CONCATENATE(GENL_MAGIC_FAMILY, _genl_register)(void)` names no
    # function CONCATENATE; taking it for one links every CONCATENATE(...) in the tree to it
    _, funcs = functions(rules, """
int CONCATENATE(GENL_MAGIC_FAMILY, _genl_register)(void)
{
	return genl_register_family(&ZZZ_genl_family);
}

static int (*pick(int x))(void)
{
	return handler;
}
""")
    assert list(funcs) == ["pick"]
