// Package desired owns the desired state: the HCL files in which an
// administrator declares the packages a machine should have
// (/etc/packets/state.hcl and /etc/packets/state.d/*.hcl), parsed into a
// validated [State], and the edits that `packets install` and `packets remove`
// make to those files.
//
// # The language
//
// A state file holds `package "NAME" {...}` blocks and `locals {...}` blocks,
// nothing else:
//
//	locals {
//	  rg = ">= 14.0"
//	  common = { log_level = "info" }
//	}
//
//	package "htop" {}
//
//	package "ripgrep" {
//	  version = local.rg            # a constraint; absent means newest
//	  hold    = true                # never upgrade in place
//	}
//
//	package "nano" {
//	  ensure = "absent"             # remove if present, never install as a dependency
//	}
//
//	package "nginx" {
//	  repo    = "extra"             # take it from this repository only
//	  options = merge(local.common, { worker_processes = 4 })
//	}
//
// A package block accepts version (a string constraint), hold (a bool),
// ensure ("present" or "absent"), options (an object of strings, numbers or
// bools, stored in their string form) and repo (a repository name). An
// attribute set to null counts as not set, and so does an option set to null.
// `hold = true` and `version` both contradict `ensure = "absent"` and are
// errors there.
//
// Expressions are HCL's: comments (#, // and /* */), heredocs, templates
// with interpolation and %{if} directives, conditionals, indexing, splats,
// the arithmetic and logic operators, and the functions coalesce, concat,
// format, join, lower, merge, trimspace and upper. The only variables are the
// file's own locals (local.NAME): locals are scoped to the file that declares
// them, so drop-ins written by different tools cannot collide, and a local
// may refer to other locals of its file, in any order, but not to itself
// through a cycle. For expressions (and %{for} directives) are refused: a
// state file has nothing to iterate, and they are the one construct whose
// cost grows with the product of value sizes. Values are bounded in size too
// (see limits.go), so that a broken or hostile file cannot exhaust memory.
//
// # Files
//
// [LoadMachine] reads the main file and then the drop-in directory's *.hcl
// files in lexical order, ignoring hidden files and editor leftovers; [Load]
// reads one file or one directory. Either may be missing: an empty state is
// valid (refusing to act on an empty state is the planner's job). Declaring a
// package twice, in one file or across files, is an error that names both
// positions. Every problem of every file is reported at once, as an [*Error]
// whose text gives each diagnostic as "FILE:LINE:COL: summary: detail"
// followed by the source line and a caret line.
//
// [LoadMachineMemo] is LoadMachine with a [Memo]: the state the files last
// decoded to, kept beside installed.db under the SHA-256 of the files'
// names and bytes and of the program, and used while they are unchanged
// instead of parsing them again. Decoding is a pure function of those, so
// the memo is exact; a load with any diagnostic is never remembered.
//
// # Editing
//
// [AddPackage] and [RemovePackage] edit one file in place: only the edited
// block changes, every other byte (comments, ordering, alignment) is kept,
// and the file is replaced atomically (temporary file in the same directory,
// fsync, rename, fsync of the directory). [FindDeclaration] tells which file
// declares a package, so that remove edits that one.
//
// The package imports only packages and the HCL and cty libraries; it never
// plans, installs or prints. The CLI and the watch loop call it.
package desired
