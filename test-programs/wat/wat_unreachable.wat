;; Traps with `unreachable` two named calls deep: the backtrace must name both.
(module
  (func $boom unreachable)
  (func $call_boom call $boom)
  (func (export "_start") call $call_boom))
