;; `req` of the `wasi_experimental_http` ABI given every kind of bad
;; pointer, length and encoding, then once correctly. The URL in its first
;; argument is allowed and served: a check that failed to fire would reach
;; the server. It prints one `CASE -> CODE` line per call.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "req"
    (func $req (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))

  ;; 0: iovec; 8: nwritten; 12: argc; 16: argv buffer size; 20: status;
  ;; 24: handle; 32..48: digits; 64..: text; 0x10000: argv pointers;
  ;; 0x11000: argv strings. Memory ends at 0x20000.
  (memory (export "memory") 2)
  (data (i32.const 64) " -> ")
  (data (i32.const 68) "\n")
  (data (i32.const 72) "GET")
  (data (i32.const 108) "\ff\fe")
  (data (i32.const 112) "url out of bounds")
  (data (i32.const 132) "url length wraps")
  (data (i32.const 152) "url not UTF-8")
  (data (i32.const 168) "method out of bounds")
  (data (i32.const 192) "method not UTF-8")
  (data (i32.const 212) "headers out of bounds")
  (data (i32.const 236) "headers not UTF-8")
  (data (i32.const 256) "body out of bounds")
  (data (i32.const 276) "status_ptr out of bounds")
  (data (i32.const 304) "handle_ptr out of bounds")
  (data (i32.const 332) "valid")

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

  (func $report (param $label i32) (param $len i32) (param $code i32)
    (call $print (local.get $label) (local.get $len))
    (call $print (i32.const 64) (i32.const 4))
    (call $print_u32 (local.get $code))
    (call $print (i32.const 68) (i32.const 1)))

  (func (export "_start")
    (local $url i32) (local $len i32)
    (drop (call $args_sizes_get (i32.const 12) (i32.const 16)))
    (if (i32.gt_u (i32.load (i32.const 16)) (i32.const 0xf000)) (then unreachable))
    (if (i32.lt_u (i32.load (i32.const 12)) (i32.const 2)) (then unreachable))
    (drop (call $args_get (i32.const 0x10000) (i32.const 0x11000)))
    (local.set $url (i32.load (i32.const 0x10004)))
    (local.set $len (call $strlen (local.get $url)))

    (call $report (i32.const 112) (i32.const 17)
      (call $req (i32.const 0x1fff0) (i32.const 32) (i32.const 72) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 132) (i32.const 16)
      (call $req (local.get $url) (i32.const -16) (i32.const 72) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 152) (i32.const 13)
      (call $req (i32.const 108) (i32.const 2) (i32.const 72) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 168) (i32.const 20)
      (call $req (local.get $url) (local.get $len) (i32.const 0x20000) (i32.const 1)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 192) (i32.const 16)
      (call $req (local.get $url) (local.get $len) (i32.const 108) (i32.const 2)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 212) (i32.const 21)
      (call $req (local.get $url) (local.get $len) (i32.const 72) (i32.const 3)
        (i32.const 0x1ff00) (i32.const 0x101) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 236) (i32.const 17)
      (call $req (local.get $url) (local.get $len) (i32.const 72) (i32.const 3)
        (i32.const 108) (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 256) (i32.const 18)
      (call $req (local.get $url) (local.get $len) (i32.const 72) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0x1ffff) (i32.const 2) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 276) (i32.const 24)
      (call $req (local.get $url) (local.get $len) (i32.const 72) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x1ffff) (i32.const 24)))
    (call $report (i32.const 304) (i32.const 24)
      (call $req (local.get $url) (local.get $len) (i32.const 72) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 0x1fffd)))
    (call $report (i32.const 332) (i32.const 5)
      (call $req (local.get $url) (local.get $len) (i32.const 72) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))))
