;; The all-reduce's arithmetic for ./reduce-kernel.ts: dst += src, and on a segment's last addition
;; dst = (dst + src) / divisor, four floats per instruction.
;;
;; f32x4.add rounds each sum to float32 exactly as a Float32Array store does, and the division
;; happens once per element on one rank, so every rank ends with the same bits.
;; Both functions work in whole 16-byte lanes from dst up to dst + bytes rounded up to a lane: the
;; caller leaves a lane of slack after each region.
(module
  (memory (export "memory") 1)

  ;; dst += src over `bytes` bytes.
  (func (export "add") (param $dst i32) (param $src i32) (param $bytes i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $dst) (local.get $bytes)))
    (block $done
      (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
      (loop $lanes
        (v128.store align=4 (local.get $dst)
          (f32x4.add (v128.load align=4 (local.get $dst)) (v128.load align=4 (local.get $src))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (br_if $lanes (i32.lt_u (local.get $dst) (local.get $end))))))

  ;; dst = (dst + src) / divisor over `bytes` bytes, the sum rounded to float32 before the division.
  (func (export "addDivide") (param $dst i32) (param $src i32) (param $bytes i32) (param $divisor f32)
    (local $end i32)
    (local.set $end (i32.add (local.get $dst) (local.get $bytes)))
    (block $done
      (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
      (loop $lanes
        (v128.store align=4 (local.get $dst)
          (f32x4.div
            (f32x4.add (v128.load align=4 (local.get $dst)) (v128.load align=4 (local.get $src)))
            (f32x4.splat (local.get $divisor))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (br_if $lanes (i32.lt_u (local.get $dst) (local.get $end)))))))
