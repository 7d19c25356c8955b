;; Branches of every kind, for branch-arm probes: `probe run --branch --invoke classify switch.wat 2`.
(module
  (func $classify (export "classify") (param $x i32) (result i32)
    (block $big
      (block $two
        (block $one
          (block $zero
            (br_table $zero $one $two $big (local.get $x)))
          (return (i32.const 100)))
        (return (i32.const 101)))
      (return (i32.const 102)))
    (if (i32.gt_u (local.get $x) (i32.const 10))
      (then (return (i32.const 999))))
    (i32.const 103))
  (func $count_down (export "count_down") (param $n i32) (result i32)
    (local $steps i32)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
        (br $again)))
    (local.get $steps)))
