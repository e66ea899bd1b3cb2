;; A module that exports no `memory` calls every function of the
;; `wasi_experimental_http` ABI that takes a pointer: each must return 2
;; (memory not found), and `close` of a handle that never was 1, with no
;; trap. Without a memory it cannot print, so it reports through its exit
;; code: 0 when every call returned what it should, else 10 * the number of
;; the first wrong call + the code it returned.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_experimental_http" "req"
    (func $req (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "body_read"
    (func $body_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "header_get"
    (func $header_get (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "headers_get_all"
    (func $headers_get_all (param i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "close" (func $close (param i32) (result i32)))
  ;; A memory of its own, not exported: the host must not find it.
  (memory 1)

  (func $expect (param $call i32) (param $code i32) (param $want i32)
    (if (i32.ne (local.get $code) (local.get $want))
      (then (call $proc_exit
        (i32.add (i32.mul (local.get $call) (i32.const 10)) (local.get $code))))))

  (func (export "_start")
    (call $expect (i32.const 1)
      (call $req (i32.const 0) (i32.const 8) (i32.const 8) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 16) (i32.const 20))
      (i32.const 2))
    (call $expect (i32.const 2)
      (call $body_read (i32.const 0) (i32.const 0) (i32.const 16) (i32.const 16))
      (i32.const 2))
    (call $expect (i32.const 3)
      (call $header_get (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 8) (i32.const 8) (i32.const 16))
      (i32.const 2))
    (call $expect (i32.const 4)
      (call $headers_get_all (i32.const 0) (i32.const 0) (i32.const 16) (i32.const 16))
      (i32.const 2))
    (call $expect (i32.const 5) (call $close (i32.const 0)) (i32.const 1))))
