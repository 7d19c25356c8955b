;; Known operands: run(n) stores i at 100 + 4*i, calls double or negate through the table
;; (alternating), leaves its loop with br_if when i >= n, and returns the sum.
(module
  (type $un (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (table 2 funcref)
  (elem (i32.const 0) $double $negate)
  (func $double (type $un) local.get 0 i32.const 2 i32.mul)
  (func $negate (type $un) i32.const 0 local.get 0 i32.sub)
  (func $run (export "run") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    block $done
      loop $next
        local.get $i local.get $n i32.ge_u br_if $done
        local.get $i i32.const 4 i32.mul local.get $i i32.store offset=100
        local.get $acc
        local.get $i
        local.get $i i32.const 1 i32.and call_indirect (type $un)
        i32.add local.set $acc
        local.get $i i32.const 1 i32.add local.set $i
        br $next
      end
    end
    local.get $acc))
