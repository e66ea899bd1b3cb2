;; A component importing an interface no host provides: loading must fail
;; and name the import.
(component
  (import "wasmdapr:test/nowhere" (instance (export "f" (func)))))
