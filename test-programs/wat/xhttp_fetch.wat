;; A tiny curl over the `wasi_experimental_http` ABI. Its arguments are
;; quadruples METHOD URL HEADERS BODY. For each it prints
;; `METHOD URL -> STATUS (handle H)` and a line with the body, read five
;; bytes at a time, or `METHOD URL -> error N`. Responses stay open until
;; every request is made (so an instance's cap on open responses shows);
;; then it closes handle 0 twice (`close 0 -> 0`, `close 0 -> 1`) and repeats
;; the first request, which gets handle 0 again.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "req"
    (func $req (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "body_read"
    (func $body_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "close" (func $close (param i32) (result i32)))

  ;; 0: iovec; 8: nwritten; 12: argc; 16: argv buffer size; 20: status (u16);
  ;; 24: handle; 28: bytes read; 32..48: digits; 48: body buffer (5 bytes);
  ;; 64..: text; 0x10000: argv pointers; 0x11000..0x20000: argv strings.
  (memory (export "memory") 2)
  (data (i32.const 64) " -> ")
  (data (i32.const 68) "error ")
  (data (i32.const 80) " (handle ")
  (data (i32.const 90) ")\n")
  (data (i32.const 92) "\n")
  (data (i32.const 93) " ")
  (data (i32.const 96) "close 0 -> ")
  (data (i32.const 112) "body error ")

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

  (func $arg (param $i i32) (result i32)
    (i32.load (i32.add (i32.const 0x10000) (i32.shl (local.get $i) (i32.const 2)))))

  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done
      (loop $scan
        (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $scan)))
    (i32.sub (local.get $end) (local.get $ptr)))

  ;; The request whose METHOD is argument $k.
  (func $fetch (param $k i32)
    (local $method i32) (local $url i32) (local $headers i32) (local $body i32)
    (local $err i32) (local $n i32)
    (local.set $method (call $arg (local.get $k)))
    (local.set $url (call $arg (i32.add (local.get $k) (i32.const 1))))
    (local.set $headers (call $arg (i32.add (local.get $k) (i32.const 2))))
    (local.set $body (call $arg (i32.add (local.get $k) (i32.const 3))))
    (call $print (local.get $method) (call $strlen (local.get $method)))
    (call $print (i32.const 93) (i32.const 1))
    (call $print (local.get $url) (call $strlen (local.get $url)))
    (call $print (i32.const 64) (i32.const 4))
    (local.set $err
      (call $req
        (local.get $url) (call $strlen (local.get $url))
        (local.get $method) (call $strlen (local.get $method))
        (local.get $headers) (call $strlen (local.get $headers))
        (local.get $body) (call $strlen (local.get $body))
        (i32.const 20) (i32.const 24)))
    (if (local.get $err)
      (then
        (call $print (i32.const 68) (i32.const 6))
        (call $print_u32 (local.get $err))
        (call $print (i32.const 92) (i32.const 1))
        (return)))
    (call $print_u32 (i32.load16_u (i32.const 20)))
    (call $print (i32.const 80) (i32.const 9))
    (call $print_u32 (i32.load (i32.const 24)))
    (call $print (i32.const 90) (i32.const 2))
    (block $end
      (loop $chunks
        (local.set $err
          (call $body_read (i32.load (i32.const 24)) (i32.const 48) (i32.const 5) (i32.const 28)))
        (if (local.get $err)
          (then
            (call $print (i32.const 112) (i32.const 11))
            (call $print_u32 (local.get $err))
            (br $end)))
        (local.set $n (i32.load (i32.const 28)))
        (br_if $end (i32.eqz (local.get $n)))
        (call $print (i32.const 48) (local.get $n))
        (br $chunks)))
    (call $print (i32.const 92) (i32.const 1)))

  (func $close_0
    (call $print (i32.const 96) (i32.const 11))
    (call $print_u32 (call $close (i32.const 0)))
    (call $print (i32.const 92) (i32.const 1)))

  (func (export "_start")
    (local $k i32)
    (drop (call $args_sizes_get (i32.const 12) (i32.const 16)))
    (if (i32.gt_u (i32.load (i32.const 16)) (i32.const 0xf000)) (then unreachable))
    (if (i32.gt_u (i32.load (i32.const 12)) (i32.const 1024)) (then unreachable))
    (drop (call $args_get (i32.const 0x10000) (i32.const 0x11000)))
    (local.set $k (i32.const 1))
    (block $done
      (loop $requests
        (br_if $done
          (i32.gt_u (i32.add (local.get $k) (i32.const 4)) (i32.load (i32.const 12))))
        (call $fetch (local.get $k))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $requests)))
    (call $close_0)
    (call $close_0)
    (if (i32.ge_u (i32.load (i32.const 12)) (i32.const 5))
      (then (call $fetch (i32.const 1))))))
