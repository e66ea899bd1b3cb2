;; Spins forever without calling the host: only epoch interruption can stop it.
(module
  (func $spin (loop $again (br $again)))
  (export "_start" (func $spin)))
