;; Built like the AssemblyScript apps of the original prototype: no `_start`,
;; the whole program runs in the start section during instantiation. Like
;; as-wasi, it writes each line and its "\n" as two buffers of one `fd_write`
;; and ignores short writes; then it exits with code 7 through `proc_exit`.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "first line")
  (data (i32.const 120) "second line")
  (data (i32.const 140) "\n")
  ;; iovecs: [100, 10] [140, 1] at 0; [120, 11] [140, 1] at 16
  (data (i32.const 0) "\64\00\00\00\0a\00\00\00\8c\00\00\00\01\00\00\00")
  (data (i32.const 16) "\78\00\00\00\0b\00\00\00\8c\00\00\00\01\00\00\00")
  (func $main
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 200)))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 2) (i32.const 200)))
    (call $proc_exit (i32.const 7)))
  (start $main))
