;; Ball-Larus paths with a known answer: $f's loop runs 10 times, two ifs per iteration (one
;; without else); $g dispatches through a br_table whose arms go forward, back to its loop
;; and out of the function.
(module
  (func $f (param $n i32) (local $i i32) (local $acc i32)
    (loop $l
      (if (i32.and (local.get $i) (i32.const 1))
        (then (local.set $acc (i32.add (local.get $acc) (i32.const 1))))
        (else (local.set $acc (i32.add (local.get $acc) (i32.const 2)))))
      (if (i32.lt_u (local.get $i) (i32.const 3))
        (then (local.set $acc (i32.add (local.get $acc) (i32.const 5)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  (func $g (param $n i32) (result i32) (local $acc i32)
    (loop $again
      (block $three
        (block $two
          (block $one
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            ;; n % 4: 0 -> one, 1 -> two, 2 -> again (back), 3 and up -> three
            (br_table $one $two $again $three (i32.rem_u (local.get $n) (i32.const 4))))
          (local.set $acc (i32.add (local.get $acc) (i32.const 1)))
          (br_if $again (local.get $n))
          (return (local.get $acc)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 10)))
        (br $again))
      (if (i32.eqz (local.get $n)) (then (return (local.get $acc)))))
    (local.get $acc))
  (func (export "_start")
    (call $f (i32.const 10))
    (drop (call $g (i32.const 23)))))
