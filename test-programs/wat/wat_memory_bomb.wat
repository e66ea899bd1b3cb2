;; Grows its memory 1 MiB at a time until the host refuses.
(module
  (memory 1)
  (func $bomb
    (loop $again
      (br_if $again (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))))
  (export "_start" (func $bomb)))
