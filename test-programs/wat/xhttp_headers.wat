;; Response headers, body reads and handles of the `wasi_experimental_http`
;; ABI, with every bad pointer, length and handle they can be given. It
;; GETs the URL in its first argument and prints one `CALL -> CODE` line per
;; call (with what was written after a success, or the length needed after
;; error 4). The bad-pointer reads come before the body is read in full, to
;; show they consumed nothing.
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
  (import "wasi_experimental_http" "header_get"
    (func $header_get (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "headers_get_all"
    (func $headers_get_all (param i32 i32 i32 i32) (result i32)))
  (import "wasi_experimental_http" "close" (func $close (param i32) (result i32)))

  ;; 0: iovec; 8: nwritten; 12: argc; 16: argv buffer size; 20: status;
  ;; 24: handle; 28: written; 32..48: digits; 64..: text; 0x1000: a 1 KiB
  ;; buffer; 0x10000: argv pointers; 0x11000: argv strings. Memory ends at
  ;; 0x20000.
  (memory (export "memory") 2)
  (data (i32.const 64) " -> ")
  (data (i32.const 68) "\n")
  (data (i32.const 69) " ")
  (data (i32.const 72) "GET")
  (data (i32.const 80) "X-TEST")
  (data (i32.const 88) "x-multi")
  (data (i32.const 96) "x-missing")
  (data (i32.const 108) "\ff\fe")
  (data (i32.const 112) "header_get X-TEST")
  (data (i32.const 132) "header_get x-multi")
  (data (i32.const 152) "header_get x-missing")
  (data (i32.const 176) "header_get into 2 bytes")
  (data (i32.const 200) "header_get non-UTF-8 name")
  (data (i32.const 228) "header_get name out of bounds")
  (data (i32.const 260) "header_get value out of bounds")
  (data (i32.const 292) "header_get written_ptr out of bounds")
  (data (i32.const 332) "headers_get_all")
  (data (i32.const 348) "headers_get_all into 4 bytes")
  (data (i32.const 380) "headers_get_all out of bounds")
  (data (i32.const 412) "body_read buffer out of bounds")
  (data (i32.const 444) "body_read nread_ptr out of bounds")
  (data (i32.const 480) "body_read")
  (data (i32.const 492) "close")
  (data (i32.const 500) "close again")
  (data (i32.const 512) "body_read closed")
  (data (i32.const 532) "header_get closed")
  (data (i32.const 552) "headers_get_all closed")
  (data (i32.const 576) "close 12345")
  (data (i32.const 588) "close -1")
  (data (i32.const 600) "req")

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

  ;; `LABEL -> CODE`, without the newline.
  (func $report (param $label i32) (param $len i32) (param $code i32)
    (call $print (local.get $label) (local.get $len))
    (call $print (i32.const 64) (i32.const 4))
    (call $print_u32 (local.get $code)))

  (func $newline (call $print (i32.const 68) (i32.const 1)))

  ;; `LABEL -> CODE`, then ` WRITTEN-BYTES` after a success.
  (func $report_written (param $label i32) (param $len i32) (param $code i32)
    (call $report (local.get $label) (local.get $len) (local.get $code))
    (if (i32.eqz (local.get $code))
      (then
        (call $print (i32.const 69) (i32.const 1))
        (call $print (i32.const 0x1000) (i32.load (i32.const 28)))))
    (call $newline))

  (func (export "_start")
    (local $url i32) (local $h i32) (local $code i32)
    (drop (call $args_sizes_get (i32.const 12) (i32.const 16)))
    (if (i32.gt_u (i32.load (i32.const 16)) (i32.const 0xf000)) (then unreachable))
    (if (i32.lt_u (i32.load (i32.const 12)) (i32.const 2)) (then unreachable))
    (drop (call $args_get (i32.const 0x10000) (i32.const 0x11000)))
    (local.set $url (i32.load (i32.const 0x10004)))

    (local.set $code
      (call $req (local.get $url) (call $strlen (local.get $url)) (i32.const 72) (i32.const 3)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 20) (i32.const 24)))
    (call $report (i32.const 600) (i32.const 3) (local.get $code))
    (call $newline)
    (local.set $h (i32.load (i32.const 24)))

    ;; Found, matched case-insensitively; the first of two values.
    (call $report_written (i32.const 112) (i32.const 17)
      (call $header_get (local.get $h) (i32.const 80) (i32.const 6)
        (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    (call $report_written (i32.const 132) (i32.const 18)
      (call $header_get (local.get $h) (i32.const 88) (i32.const 7)
        (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    ;; 5, 4 (then the length needed), 6, 3, 3, 3.
    (call $report_written (i32.const 152) (i32.const 20)
      (call $header_get (local.get $h) (i32.const 96) (i32.const 9)
        (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    (call $report (i32.const 176) (i32.const 23)
      (call $header_get (local.get $h) (i32.const 80) (i32.const 6)
        (i32.const 0x1000) (i32.const 2) (i32.const 28)))
    (call $print (i32.const 69) (i32.const 1))
    (call $print_u32 (i32.load (i32.const 28)))
    (call $newline)
    (call $report_written (i32.const 200) (i32.const 25)
      (call $header_get (local.get $h) (i32.const 108) (i32.const 2)
        (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    (call $report_written (i32.const 228) (i32.const 29)
      (call $header_get (local.get $h) (i32.const 0x1ffff) (i32.const 6)
        (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    (call $report_written (i32.const 260) (i32.const 30)
      (call $header_get (local.get $h) (i32.const 80) (i32.const 6)
        (i32.const 0x1fffe) (i32.const 64) (i32.const 28)))
    (call $report_written (i32.const 292) (i32.const 36)
      (call $header_get (local.get $h) (i32.const 80) (i32.const 6)
        (i32.const 0x1000) (i32.const 1024) (i32.const 0x1fffe)))

    ;; All headers as `name:value` lines; 4 (then the length needed); 3.
    (local.set $code
      (call $headers_get_all (local.get $h) (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    (call $report (i32.const 332) (i32.const 15) (local.get $code))
    (call $newline)
    (if (i32.eqz (local.get $code))
      (then (call $print (i32.const 0x1000) (i32.load (i32.const 28)))))
    (call $report (i32.const 348) (i32.const 28)
      (call $headers_get_all (local.get $h) (i32.const 0x1000) (i32.const 4) (i32.const 28)))
    (call $print (i32.const 69) (i32.const 1))
    (call $print_u32 (i32.load (i32.const 28)))
    (call $newline)
    (call $report (i32.const 380) (i32.const 29)
      (call $headers_get_all (local.get $h) (i32.const 0x1ff00) (i32.const 0x100000) (i32.const 28)))
    (call $newline)

    ;; Bad body buffers take nothing from the body, which then reads whole.
    (call $report (i32.const 412) (i32.const 30)
      (call $body_read (local.get $h) (i32.const 0x1fff0) (i32.const 17) (i32.const 28)))
    (call $newline)
    (call $report (i32.const 444) (i32.const 33)
      (call $body_read (local.get $h) (i32.const 0x1000) (i32.const 1024) (i32.const -2)))
    (call $newline)
    (call $report_written (i32.const 480) (i32.const 9)
      (call $body_read (local.get $h) (i32.const 0x1000) (i32.const 1024) (i32.const 28)))

    ;; A closed handle, and handles that never were, are 1 everywhere.
    (call $report (i32.const 492) (i32.const 5) (call $close (local.get $h)))
    (call $newline)
    (call $report (i32.const 500) (i32.const 11) (call $close (local.get $h)))
    (call $newline)
    (call $report (i32.const 512) (i32.const 16)
      (call $body_read (local.get $h) (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    (call $newline)
    (call $report (i32.const 532) (i32.const 17)
      (call $header_get (local.get $h) (i32.const 80) (i32.const 6)
        (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    (call $newline)
    (call $report (i32.const 552) (i32.const 22)
      (call $headers_get_all (local.get $h) (i32.const 0x1000) (i32.const 1024) (i32.const 28)))
    (call $newline)
    (call $report (i32.const 576) (i32.const 11) (call $close (i32.const 12345)))
    (call $newline)
    (call $report (i32.const 588) (i32.const 8) (call $close (i32.const -1)))
    (call $newline)))
