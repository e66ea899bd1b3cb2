;; A component that exports nothing: it has no entry point to run.
(component)
