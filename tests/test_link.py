"""Call resolution and the call graph (link/)."""

from __future__ import annotations

from gfpcheck.link import (
    CONFIDENT,
    NAME_ONLY,
    T_ALLOC,
    T_BEGIN,
    T_FUNC,
    T_INDIRECT,
    T_PARAM,
    T_SCOPE,
    Target,
)

from .helpers import analyse


def target_of(a, function: str, callee: str, path: str | None = None):
    fid = a.fid(function, path)
    calls = a.program.calls(fid)
    index = next(i for i, c in enumerate(calls) if c[0] == callee)
    return a.program.targets(fid)[index]


def names(a, ids) -> list[str]:
    return sorted(f"{a.program.functions[i].name}@{a.program.path(i)}" for i in ids)


def test_static_functions_resolve_in_their_own_file(rules):
    a = analyse(rules, {
        "a.c": "static int helper(void) { return 1; }\nint a(void) { return helper(); }\n",
        "b.c": "static int helper(void) { return 2; }\nint b(void) { return helper(); }\n",
        "c.c": "int c(void) { return helper(); }\n",
    })
    assert names(a, target_of(a, "a", "helper").ids) == ["helper@a.c"]
    assert names(a, target_of(a, "b", "helper").ids) == ["helper@b.c"]
    assert target_of(a, "c", "helper").kind != T_FUNC  # a static elsewhere is not visible


def test_rules_take_precedence_over_definitions(rules):
    a = analyse(rules, {"include/linux/slab.h": "static inline void *kmalloc(size_t s, gfp_t f) { return __kmalloc(s, f); }\n",
                        "a.c": "void f(struct btrfs_root *r) { kmalloc(1, GFP_KERNEL); memalloc_nofs_save(); btrfs_start_transaction(r, 1); }\n"})
    assert target_of(a, "f", "kmalloc") == Target(T_ALLOC, api="kmalloc")
    assert target_of(a, "f", "memalloc_nofs_save") == Target(T_SCOPE, api="memalloc_nofs_save")
    assert target_of(a, "f", "btrfs_start_transaction").kind == T_BEGIN


def test_member_calls_resolve_by_struct_type(rules):
    a = analyse(rules, {"a.c": """
struct foo_ops { int (*run)(void); };
struct bar_ops { int (*run)(void); };
struct foo { const struct foo_ops *ops; };
static int foo_run(void) { return 0; }
static int bar_run(void) { return 1; }
static const struct foo_ops foo_ops = { .run = foo_run };
static const struct bar_ops bar_ops = { .run = bar_run };
int call_foo(struct foo *f) { return f->ops->run(); }
int call_unknown(struct mystery *m) { return m->ops->run(); }
"""})
    typed = target_of(a, "call_foo", "run")
    assert typed.kind == T_INDIRECT and typed.confidence == CONFIDENT
    assert names(a, typed.ids) == ["foo_run@a.c"]
    untyped = target_of(a, "call_unknown", "run")
    assert untyped.kind == T_INDIRECT and untyped.confidence == NAME_ONLY
    assert names(a, untyped.ids) == ["bar_run@a.c", "foo_run@a.c"]


def test_lsm_dispatch_by_hook_name(rules):
    a = analyse(rules, {"security/demo.c": """
static int demo_open(struct file *f) { return 0; }
static int demo_perm(struct inode *i, int mask) { return 0; }
static struct security_hook_list hooks[] = {
	LSM_HOOK_INIT(file_open, demo_open),
	LSM_HOOK_INIT(inode_permission, demo_perm),
};
int security_file_open(struct file *f) { return call_int_hook(file_open, f); }
int security_inode_permission(struct inode *inode, int mask)
{
	struct lsm_static_call *scall;
	lsm_for_each_hook(scall, inode_permission) {
		scall->hl->hook.inode_permission(inode, mask);
	}
	return 0;
}
"""})
    assert names(a, target_of(a, "security_file_open", "call_int_hook").ids) == ["demo_open@security/demo.c"]
    assert names(a, target_of(a, "security_inode_permission", "inode_permission").ids) == \
        ["demo_perm@security/demo.c"]


def test_callbacks_are_bound_per_call_site(rules):
    a = analyse(rules, {"a.c": """
int run_callback(int (*cb)(void *), void *data) { return cb(data); }
int forward(int (*fn)(void *), void *data) { return run_callback(fn, data); }
static int one(void *d) { return 1; }
static int two(void *d) { return 2; }
int use_one(void) { return run_callback(one, NULL); }
int use_two(void) { return forward(two, NULL); }
"""})
    assert target_of(a, "run_callback", "cb") == Target(T_PARAM, param=0)
    assert a.program.invoked_params[a.fid("forward")] == {0}
    sites = {a.program.functions[b.caller].name for b in a.program.binding_sites[a.fid("one")]}
    assert sites == {"use_one"}
    sites = {a.program.functions[b.caller].name for b in a.program.binding_sites[a.fid("two")]}
    assert sites == {"use_two"}
    graph = a.program.graph
    assert graph.has_edge(a.fid("use_one"), a.fid("one"))
    assert not graph.has_edge(a.fid("use_one"), a.fid("two"))


def test_macros_are_graph_nodes(rules):
    a = analyse(rules, {"a.h": "#define start(x) __start((x), 1)\n",
                        "a.c": "int __start(int x, int y) { return x; }\nint f(void) { return start(3); }\n"})
    assert names(a, target_of(a, "f", "start").ids) == ["start@a.h"]
    assert names(a, target_of(a, "start", "__start").ids) == ["__start@a.c"]


def test_nested_initialisers_bind_the_member_struct(rules):
    a = analyse(rules, {"block/elevator.h": """
struct request_queue;
struct elevator_mq_ops { int (*init_sched)(struct request_queue *q); };
struct elevator_type { struct elevator_mq_ops ops; const char *elevator_name; };
struct elevator_queue { struct elevator_type *type; };
""", "block/mq-deadline.c": """
static int dd_init_sched(struct request_queue *q) { return 0; }
static struct elevator_type mq_deadline = {
	.ops = {
		.init_sched	= dd_init_sched,
	},
	.elevator_name	= "mq-deadline",
};
int elevator_init(struct elevator_queue *e, struct request_queue *q) { return e->type->ops.init_sched(q); }
"""})
    resolver = a.program.resolver
    assert names(a, resolver.by_member[("struct elevator_mq_ops", "init_sched")]) == \
        ["dd_init_sched@block/mq-deadline.c"]
    assert ("struct elevator_type", "init_sched") not in resolver.by_member
    typed = target_of(a, "elevator_init", "init_sched")
    assert typed.kind == T_INDIRECT and typed.confidence == CONFIDENT and typed.carries
    assert names(a, typed.ids) == ["dd_init_sched@block/mq-deadline.c"]


def test_arrays_of_structs_bind_their_element_type(rules):
    a = analyse(rules, {"a.c": """
struct foo_ops { int (*f)(void); };
struct foo { const struct foo_ops *ops; };
static int a_f(void) { return 0; }
static int b_f(void) { return 1; }
static const struct foo_ops tbl[] = { { .f = a_f }, { .f = b_f } };
int call(struct foo *x) { return x->ops->f(); }
"""})
    typed = target_of(a, "call", "f")
    assert typed.kind == T_INDIRECT and typed.confidence == CONFIDENT
    assert names(a, typed.ids) == ["a_f@a.c", "b_f@a.c"]


def test_typed_call_with_no_typed_binding_falls_back_to_the_member_name(rules):
    a = analyse(rules, {"a.c": """
struct foo_ops { int (*run)(void); };
struct foo { const struct foo_ops *ops; };
static int somewhere_run(void) { return 0; }
void setup(struct unknown *u) { u->ops->run = somewhere_run; }
int call_foo(struct foo *f) { return f->ops->run(); }
"""})
    fallback = target_of(a, "call_foo", "run")
    assert fallback.kind == T_INDIRECT and fallback.confidence == NAME_ONLY and fallback.carries is False
    assert names(a, fallback.ids) == ["somewhere_run@a.c"]


def test_tables_built_by_a_macro_resolve_typed_member_calls(rules):
    a = analyse(rules, {"block/blk-sysfs.c": r"""
struct request_queue;
struct queue_sysfs_entry {
	struct attribute attr;
	ssize_t (*show)(struct request_queue *q, char *page);
	ssize_t (*store)(struct request_queue *q, const char *page, size_t count);
};
static ssize_t queue_requests_show(struct request_queue *q, char *page) { return 0; }
static ssize_t queue_requests_store(struct request_queue *q, const char *page, size_t count) { return count; }

#define QUEUE_RW_ENTRY(_prefix, _name)			\
static struct queue_sysfs_entry _prefix##_entry = {	\
	.attr	= { .name = _name, .mode = 0644 },	\
	.show	= _prefix##_show,			\
	.store	= _prefix##_store,			\
};

QUEUE_RW_ENTRY(queue_requests, "nr_requests");

ssize_t queue_attr_store(struct queue_sysfs_entry *entry, struct request_queue *q, const char *page,
			 size_t length)
{
	return entry->store(q, page, length);
}
"""})
    typed = target_of(a, "queue_attr_store", "store")
    assert typed.kind == T_INDIRECT and typed.confidence == CONFIDENT
    assert names(a, typed.ids) == ["queue_requests_store@block/blk-sysfs.c"]
