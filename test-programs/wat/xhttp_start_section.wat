;; Built like the AssemblyScript apps of the original prototype: no
;; `_start`, the whole program runs in the start section during
;; instantiation. It saves state through a Dapr sidecar's HTTP API over the
;; `wasi_experimental_http` ABI, POSTing `[{"key":"weapon","value":"Death
;; Star"}]` to the URL in its first argument, then GETs the URL in its
;; second; for each it prints `STATUS` and a line with the body. A failed
;; call prints `error N` and exits with code 1.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_experimental_http" "req"
    (func $req (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "body_read"
    (func $body_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "close" (func $close (param i32) (result i32)))

  ;; 0: iovec; 8: nwritten; 12: argc; 16: argv buffer size; 20: status;
  ;; 24: handle; 28: bytes read; 32..48: digits; 64..: text; 0x1000: body
  ;; buffer; 0x10000: argv pointers; 0x11000: argv strings.
  (memory (export "memory") 2)
  (data (i32.const 64) "\n")
  (data (i32.const 68) "error ")
  (data (i32.const 76) "POST")
  (data (i32.const 80) "GET")
  (data (i32.const 84) "Content-Type:application/json\n")
  (data (i32.const 128) "[{\"key\":\"weapon\",\"value\":\"Death Star\"}]")

  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func $print_u32 (param $n i32)
    (local $pos i32)
    (local.set $pos (i32.const 48))
    (loop $digits
      (local.set $pos (i32.sub (local.get $pos) (i32.const 1)))
      (i32.store8 (local.get $pos)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (local.get $n)))
    (call $print (local.get $pos) (i32.sub (i32.const 48) (local.get $pos))))

  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done
      (loop $scan
        (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $scan)))
    (i32.sub (local.get $end) (local.get $ptr)))

  (func $check (param $code i32)
    (if (local.get $code)
      (then
        (call $print (i32.const 68) (i32.const 6))
        (call $print_u32 (local.get $code))
        (call $print (i32.const 64) (i32.const 1))
        (call $proc_exit (i32.const 1)))))

  ;; Sends a request to the URL in argument $arg, prints its status and
  ;; body, and closes it.
  (func $send (param $arg i32) (param $method i32) (param $method_len i32)
    (param $headers i32) (param $headers_len i32) (param $body i32) (param $body_len i32)
    (local $url i32) (local $n i32)
    (local.set $url (i32.load (i32.add (i32.const 0x10000) (i32.shl (local.get $arg) (i32.const 2)))))
    (call $check
      (call $req (local.get $url) (call $strlen (local.get $url))
        (local.get $method) (local.get $method_len)
        (local.get $headers) (local.get $headers_len)
        (local.get $body) (local.get $body_len)
        (i32.const 20) (i32.const 24)))
    (call $print_u32 (i32.load16_u (i32.const 20)))
    (call $print (i32.const 64) (i32.const 1))
    (block $end
      (loop $chunks
        (call $check
          (call $body_read (i32.load (i32.const 24)) (i32.const 0x1000) (i32.const 4096) (i32.const 28)))
        (local.set $n (i32.load (i32.const 28)))
        (br_if $end (i32.eqz (local.get $n)))
        (call $print (i32.const 0x1000) (local.get $n))
        (br $chunks)))
    (call $print (i32.const 64) (i32.const 1))
    (call $check (call $close (i32.load (i32.const 24)))))

  (func $main
    (drop (call $args_sizes_get (i32.const 12) (i32.const 16)))
    (if (i32.gt_u (i32.load (i32.const 16)) (i32.const 0xf000)) (then unreachable))
    (if (i32.lt_u (i32.load (i32.const 12)) (i32.const 3)) (then unreachable))
    (drop (call $args_get (i32.const 0x10000) (i32.const 0x11000)))
    (call $send (i32.const 1) (i32.const 76) (i32.const 4)
      (i32.const 84) (i32.const 30) (i32.const 128) (i32.const 39))
    (call $send (i32.const 2) (i32.const 80) (i32.const 3)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
  (start $main))
