;; Stacks a sampler must see exactly: h leaves by a branch to its function's label, g is
;; replaced by h through a tail call, and k runs after h has left.
(module
  (func $spin (param $n i32)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n))))
  (func $h (param $n i32)
    (call $spin (local.get $n))
    (br 0))
  (func $g (param $n i32)
    (return_call $h (local.get $n)))
  (func $k (param $n i32)
    (call $spin (local.get $n)))
  (func $f
    (call $g (i32.const 400000000))
    (call $k (i32.const 400000000)))
  (func (export "_start")
    (call $f)))
