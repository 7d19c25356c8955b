;; A loop that never ends: a run to signal and to kill.
(module
  (func $spin (export "_start")
    (local $i i64)
    (loop $again
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $again))))
