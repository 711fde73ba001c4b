; Everything extraction reads from a C parse tree, in one pass of the query
; engine.  Capture names are the kinds of fact; extract/__init__.py sorts
; the captures into functions and file-scope facts by byte position.

(function_definition) @function

; SYSCALL_DEFINE3(name, type, arg, ...) { ... } parses as a call statement
; followed by a block.  @ENTRY_MACROS@ is replaced by the entry macro names
; of the rules in use.
((expression_statement (call_expression function: (identifier) @entry_macro)) @entry
  .
  (compound_statement) @entry_body
  (#any-of? @entry_macro @ENTRY_MACROS@))

(call_expression function: (_) @call_fn arguments: (argument_list) @call_args)
(assignment_expression left: (identifier) right: (call_expression)) @call_result
(init_declarator declarator: [(identifier) (pointer_declarator)] value: (call_expression)) @call_result

(if_statement) @if
(for_statement) @loop
(while_statement) @loop
(do_statement) @loop
(switch_statement) @switch
(case_statement) @case
(return_statement) @return
(goto_statement) @goto
(labeled_statement) @label
(break_statement) @break
(continue_statement) @continue

; Writes to a plain variable, kept for the variables a condition tests: the
; value a path gives them decides later branches.
(assignment_expression left: (identifier)) @assign
(update_expression argument: (identifier)) @assign
(pointer_expression operator: "&" argument: (identifier)) @assign
(init_declarator declarator: [(identifier) (pointer_declarator)] value: (_)) @assign

(initializer_pair
  designator: (field_designator)
  value: [(identifier) (pointer_expression argument: (identifier))]) @init_binding
(assignment_expression
  left: (field_expression)
  right: [(identifier) (pointer_expression argument: (identifier))]) @field_assign

(declaration type: [(struct_specifier name: (_)) (union_specifier name: (_)) (type_identifier)]) @declaration
(struct_specifier name: (_) body: (field_declaration_list)) @struct
(union_specifier name: (_) body: (field_declaration_list)) @struct
(type_definition) @typedef
(preproc_function_def) @macro

; A function-like #define with a comment in its body parses as an object-like
; one around an ERROR; extract/tables.py still reads the table it declares.
(preproc_def (ERROR (preproc_params))) @broken_macro
