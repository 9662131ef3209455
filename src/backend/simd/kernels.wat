;; Kernels in WebAssembly SIMD, run on tensors in the TF.js wasm heap: LeakyReLU and its gradient,
;; the per-channel reductions and affine maps of batch norm, transposes, a conv filter gradient and
;; col2im.
;;
;; Why: TF.js 4.22's wasm LeakyRelu is a scalar loop (several times a Relu's cost, `npm run bench:kernels`),
;; and a batch norm written with tf ops makes a pass over the activation per op (sub, square, mul,
;; add, two average pools, ...), each writing a full-size temporary. These kernels read each
;; activation once or twice and write only the result. The transposes and the conv pieces replace
;; per-element loops and badly shaped GEMMs; each function says why where it is defined.
;;
;; The module imports the TF.js module's memory, so pointers are the tensors' heap offsets (bytes).
;; Channel kernels see an NHWC tensor as `rows` rows of `channels` floats, channels a multiple of 4.
(module
  (import "tfjs" "memory" (memory 1 65536))

  ;; y = x > 0 ? x : alpha * x, over n floats.
  (func (export "leaky_relu") (param $x i32) (param $y i32) (param $n i32) (param $alpha f32)
    (local $end i32) (local $vectorEnd i32) (local $slope v128) (local $v v128) (local $s f32)
    (local.set $slope (f32x4.splat (local.get $alpha)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $vectorEnd (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vectorsDone
      (loop $vectors
        (br_if $vectorsDone (i32.ge_u (local.get $x) (local.get $vectorEnd)))
        (local.set $v (v128.load (local.get $x)))
        (v128.store (local.get $y)
          (v128.bitselect (local.get $v) (f32x4.mul (local.get $v) (local.get $slope))
            (f32x4.gt (local.get $v) (v128.const f32x4 0 0 0 0))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (br $vectors)))
    (block $done
      (loop $scalars
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $s (f32.load (local.get $x)))
        (f32.store (local.get $y)
          (select (local.get $s) (f32.mul (local.get $s) (local.get $alpha)) (f32.gt (local.get $s) (f32.const 0))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (br $scalars))))

  ;; dx = x > 0 ? dy : alpha * dy, over n floats: the gradient of leaky_relu.
  (func (export "leaky_relu_grad") (param $dy i32) (param $x i32) (param $dx i32) (param $n i32) (param $alpha f32)
    (local $end i32) (local $vectorEnd i32) (local $slope v128) (local $g v128) (local $s f32)
    (local.set $slope (f32x4.splat (local.get $alpha)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $vectorEnd (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vectorsDone
      (loop $vectors
        (br_if $vectorsDone (i32.ge_u (local.get $x) (local.get $vectorEnd)))
        (local.set $g (v128.load (local.get $dy)))
        (v128.store (local.get $dx)
          (v128.bitselect (local.get $g) (f32x4.mul (local.get $g) (local.get $slope))
            (f32x4.gt (v128.load (local.get $x)) (v128.const f32x4 0 0 0 0))))
        (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $dx (i32.add (local.get $dx) (i32.const 16)))
        (br $vectors)))
    (block $done
      (loop $scalars
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $s (f32.load (local.get $dy)))
        (f32.store (local.get $dx)
          (select (local.get $s) (f32.mul (local.get $s) (local.get $alpha)) (f32.gt (f32.load (local.get $x)) (f32.const 0))))
        (local.set $dy (i32.add (local.get $dy) (i32.const 4)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $dx (i32.add (local.get $dx) (i32.const 4)))
        (br $scalars))))

  ;; The end (byte offset from the first row) of the block of rows starting at `start`: at most 128
  ;; rows. Channel sums add each block into its own accumulator first and the block sums into the
  ;; total, so a float32 sum over 262144 rows carries the rounding of ~2k additions, not 262k.
  (func $blockEnd (param $start i32) (param $total i32) (param $rowBytes i32) (result i32)
    (select
      (i32.add (local.get $start) (i32.shl (local.get $rowBytes) (i32.const 7)))
      (local.get $total)
      (i32.gt_u (i32.sub (local.get $total) (local.get $start)) (i32.shl (local.get $rowBytes) (i32.const 7)))))

  ;; out[c] = 0 for every channel.
  (func $zero (param $out i32) (param $rowBytes i32)
    (local $j i32)
    (block $done
      (loop $lanes
        (br_if $done (i32.ge_u (local.get $j) (local.get $rowBytes)))
        (v128.store (i32.add (local.get $out) (local.get $j)) (v128.const f32x4 0 0 0 0))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $lanes))))

  ;; out[c] = sum over rows of x[r, c].
  (func (export "channel_sum") (param $x i32) (param $rows i32) (param $channels i32) (param $out i32)
    (local $rowBytes i32) (local $total i32) (local $start i32) (local $end i32) (local $j i32) (local $p i32) (local $acc v128)
    (local.set $rowBytes (i32.shl (local.get $channels) (i32.const 2)))
    (local.set $total (i32.mul (local.get $rows) (local.get $rowBytes)))
    (call $zero (local.get $out) (local.get $rowBytes))
    (block $blocksDone
      (loop $blocks
        (br_if $blocksDone (i32.ge_u (local.get $start) (local.get $total)))
        (local.set $end (call $blockEnd (local.get $start) (local.get $total) (local.get $rowBytes)))
        (local.set $j (i32.const 0))
        (block $lanesDone
          (loop $lanes
            (br_if $lanesDone (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $p (i32.add (local.get $start) (local.get $j)))
            (block $rowsDone
              (loop $rowsLoop
                (br_if $rowsDone (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $acc (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $x) (local.get $p)))))
                (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
                (br $rowsLoop)))
            (v128.store (i32.add (local.get $out) (local.get $j))
              (f32x4.add (v128.load (i32.add (local.get $out) (local.get $j))) (local.get $acc)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $lanes)))
        (local.set $start (local.get $end))
        (br $blocks))))

  ;; out[c] = sum over rows of (x[r, c] - center[c])^2.
  (func (export "channel_squared_deviation_sum") (param $x i32) (param $center i32) (param $rows i32) (param $channels i32) (param $out i32)
    (local $rowBytes i32) (local $total i32) (local $start i32) (local $end i32) (local $j i32) (local $p i32)
    (local $acc v128) (local $c v128) (local $d v128)
    (local.set $rowBytes (i32.shl (local.get $channels) (i32.const 2)))
    (local.set $total (i32.mul (local.get $rows) (local.get $rowBytes)))
    (call $zero (local.get $out) (local.get $rowBytes))
    (block $blocksDone
      (loop $blocks
        (br_if $blocksDone (i32.ge_u (local.get $start) (local.get $total)))
        (local.set $end (call $blockEnd (local.get $start) (local.get $total) (local.get $rowBytes)))
        (local.set $j (i32.const 0))
        (block $lanesDone
          (loop $lanes
            (br_if $lanesDone (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $c (v128.load (i32.add (local.get $center) (local.get $j))))
            (local.set $p (i32.add (local.get $start) (local.get $j)))
            (block $rowsDone
              (loop $rowsLoop
                (br_if $rowsDone (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $d (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $p))) (local.get $c)))
                (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $d) (local.get $d))))
                (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
                (br $rowsLoop)))
            (v128.store (i32.add (local.get $out) (local.get $j))
              (f32x4.add (v128.load (i32.add (local.get $out) (local.get $j))) (local.get $acc)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $lanes)))
        (local.set $start (local.get $end))
        (br $blocks))))

  ;; sums[c] = sum over rows of dy[r, c]; dots[c] = sum over rows of dy[r, c] * (x[r, c] - center[c]).
  (func (export "channel_sum_and_dot") (param $dy i32) (param $x i32) (param $center i32) (param $rows i32) (param $channels i32)
    (param $sums i32) (param $dots i32)
    (local $rowBytes i32) (local $total i32) (local $start i32) (local $end i32) (local $j i32) (local $p i32)
    (local $sum v128) (local $dot v128) (local $c v128) (local $g v128)
    (local.set $rowBytes (i32.shl (local.get $channels) (i32.const 2)))
    (local.set $total (i32.mul (local.get $rows) (local.get $rowBytes)))
    (call $zero (local.get $sums) (local.get $rowBytes))
    (call $zero (local.get $dots) (local.get $rowBytes))
    (block $blocksDone
      (loop $blocks
        (br_if $blocksDone (i32.ge_u (local.get $start) (local.get $total)))
        (local.set $end (call $blockEnd (local.get $start) (local.get $total) (local.get $rowBytes)))
        (local.set $j (i32.const 0))
        (block $lanesDone
          (loop $lanes
            (br_if $lanesDone (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $sum (v128.const f32x4 0 0 0 0))
            (local.set $dot (v128.const f32x4 0 0 0 0))
            (local.set $c (v128.load (i32.add (local.get $center) (local.get $j))))
            (local.set $p (i32.add (local.get $start) (local.get $j)))
            (block $rowsDone
              (loop $rowsLoop
                (br_if $rowsDone (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $g (v128.load (i32.add (local.get $dy) (local.get $p))))
                (local.set $sum (f32x4.add (local.get $sum) (local.get $g)))
                (local.set $dot (f32x4.add (local.get $dot)
                  (f32x4.mul (local.get $g) (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $p))) (local.get $c)))))
                (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
                (br $rowsLoop)))
            (v128.store (i32.add (local.get $sums) (local.get $j))
              (f32x4.add (v128.load (i32.add (local.get $sums) (local.get $j))) (local.get $sum)))
            (v128.store (i32.add (local.get $dots) (local.get $j))
              (f32x4.add (v128.load (i32.add (local.get $dots) (local.get $j))) (local.get $dot)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $lanes)))
        (local.set $start (local.get $end))
        (br $blocks))))

  ;; y[r, c] = u[r, c] * a[c] + v[r, c] * b[c] + k[c], or without `withV` u[r, c] * a[c] + k[c]
  ;; (v and b are then not read).
  (func (export "channel_affine") (param $u i32) (param $v i32) (param $a i32) (param $b i32) (param $k i32) (param $y i32)
    (param $rows i32) (param $channels i32) (param $withV i32)
    (local $rowBytes i32) (local $total i32) (local $row i32) (local $j i32) (local $p i32) (local $t v128)
    (local.set $rowBytes (i32.shl (local.get $channels) (i32.const 2)))
    (local.set $total (i32.mul (local.get $rows) (local.get $rowBytes)))
    (block $rowsDone
      (loop $rowsLoop
        (br_if $rowsDone (i32.ge_u (local.get $row) (local.get $total)))
        (local.set $j (i32.const 0))
        (block $lanesDone
          (loop $lanes
            (br_if $lanesDone (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $p (i32.add (local.get $row) (local.get $j)))
            (local.set $t (f32x4.mul (v128.load (i32.add (local.get $u) (local.get $p))) (v128.load (i32.add (local.get $a) (local.get $j)))))
            (if (local.get $withV)
              (then (local.set $t (f32x4.add (local.get $t)
                (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $p))) (v128.load (i32.add (local.get $b) (local.get $j))))))))
            (v128.store (i32.add (local.get $y) (local.get $p)) (f32x4.add (local.get $t) (v128.load (i32.add (local.get $k) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $lanes)))
        (local.set $row (i32.add (local.get $row) (local.get $rowBytes)))
        (br $rowsLoop))))

  ;; y[c, r] = x[r, c] for x of `rows` x `cols` floats: 4x4 blocks moved with eight shuffles,
  ;; in tiles of 64 rows so that the 64 input rows' cache lines stay in L1 while the columns move
  ;; on, and each output row is written in contiguous runs. TF.js's own Transpose moves one float at
  ;; a time through a generic index computation (see bench:kernels' Transpose cases).
  (func (export "transpose") (param $x i32) (param $y i32) (param $rows i32) (param $cols i32)
    (local $inStride i32) (local $outStride i32) (local $r0 i32) (local $rEnd i32) (local $rVecEnd i32)
    (local $c i32) (local $cVecEnd i32) (local $r i32) (local $k i32) (local $src i32) (local $dst i32)
    (local $a v128) (local $b v128) (local $e v128) (local $d v128) (local $lo0 v128) (local $hi0 v128) (local $lo1 v128) (local $hi1 v128)
    (local.set $inStride (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $outStride (i32.shl (local.get $rows) (i32.const 2)))
    (local.set $cVecEnd (i32.and (local.get $cols) (i32.const -4)))
    (block $tilesDone
      (loop $tiles
        (br_if $tilesDone (i32.ge_u (local.get $r0) (local.get $rows)))
        (local.set $rEnd (select (i32.add (local.get $r0) (i32.const 64)) (local.get $rows)
          (i32.gt_u (i32.sub (local.get $rows) (local.get $r0)) (i32.const 64))))
        (local.set $rVecEnd (i32.add (local.get $r0) (i32.and (i32.sub (local.get $rEnd) (local.get $r0)) (i32.const -4))))
        (local.set $c (i32.const 0))
        (block $colsDone
          (loop $colsLoop
            (br_if $colsDone (i32.ge_u (local.get $c) (local.get $cVecEnd)))
            (local.set $r (local.get $r0))
            (block $blocksDone
              (loop $blocks
                (br_if $blocksDone (i32.ge_u (local.get $r) (local.get $rVecEnd)))
                (local.set $src (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (local.get $c)) (i32.const 2))))
                (local.set $dst (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $rows)) (local.get $r)) (i32.const 2))))
                (local.set $a (v128.load (local.get $src)))
                (local.set $b (v128.load (i32.add (local.get $src) (local.get $inStride))))
                (local.set $e (v128.load (i32.add (local.get $src) (i32.shl (local.get $inStride) (i32.const 1)))))
                (local.set $d (v128.load (i32.add (local.get $src) (i32.mul (local.get $inStride) (i32.const 3)))))
                ;; [a0 b0 a1 b1], [a2 b2 a3 b3], [e0 d0 e1 d1], [e2 d2 e3 d3]
                (local.set $lo0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a) (local.get $b)))
                (local.set $hi0 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a) (local.get $b)))
                (local.set $lo1 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $e) (local.get $d)))
                (local.set $hi1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $e) (local.get $d)))
                ;; columns: [a0 b0 e0 d0], [a1 b1 e1 d1], [a2 b2 e2 d2], [a3 b3 e3 d3]
                (v128.store (local.get $dst)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $lo0) (local.get $lo1)))
                (v128.store (i32.add (local.get $dst) (local.get $outStride))
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $lo0) (local.get $lo1)))
                (v128.store (i32.add (local.get $dst) (i32.shl (local.get $outStride) (i32.const 1)))
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $hi0) (local.get $hi1)))
                (v128.store (i32.add (local.get $dst) (i32.mul (local.get $outStride) (i32.const 3)))
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $hi0) (local.get $hi1)))
                (local.set $r (i32.add (local.get $r) (i32.const 4)))
                (br $blocks)))
            ;; the tile's last rows (fewer than 4) of these four columns, one float at a time
            (block $rowTailDone
              (loop $rowTail
                (br_if $rowTailDone (i32.ge_u (local.get $r) (local.get $rEnd)))
                (local.set $k (i32.const 0))
                (block $kDone
                  (loop $kLoop
                    (br_if $kDone (i32.ge_u (local.get $k) (i32.const 4)))
                    (f32.store
                      (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (i32.add (local.get $c) (local.get $k)) (local.get $rows)) (local.get $r)) (i32.const 2)))
                      (f32.load (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (i32.add (local.get $c) (local.get $k))) (i32.const 2)))))
                    (local.set $k (i32.add (local.get $k) (i32.const 1)))
                    (br $kLoop)))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $rowTail)))
            (local.set $c (i32.add (local.get $c) (i32.const 4)))
            (br $colsLoop)))
        ;; the last columns (fewer than 4) of the tile's rows
        (block $colTailDone
          (loop $colTail
            (br_if $colTailDone (i32.ge_u (local.get $c) (local.get $cols)))
            (local.set $r (local.get $r0))
            (block $rDone
              (loop $rLoop
                (br_if $rDone (i32.ge_u (local.get $r) (local.get $rEnd)))
                (f32.store
                  (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $rows)) (local.get $r)) (i32.const 2)))
                  (f32.load (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (local.get $c)) (i32.const 2)))))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $rLoop)))
            (local.set $c (i32.add (local.get $c) (i32.const 1)))
            (br $colTail)))
        (local.set $r0 (local.get $rEnd))
        (br $tiles))))

  ;; y[c, r, :] = x[r, c, :] for x of `rows` x `cols` blocks of `block` floats each: a transpose
  ;; that moves whole runs (NHWC [B, H*W, C] to [H*W, B, C]), read in order, written a run at a time.
  (func (export "transpose_blocks") (param $x i32) (param $y i32) (param $rows i32) (param $cols i32) (param $block i32)
    (local $blockBytes i32) (local $vecBytes i32) (local $outStride i32) (local $r i32) (local $c i32)
    (local $src i32) (local $dst i32) (local $i i32)
    (local.set $blockBytes (i32.shl (local.get $block) (i32.const 2)))
    (local.set $vecBytes (i32.and (local.get $blockBytes) (i32.const -16)))
    (local.set $outStride (i32.mul (local.get $rows) (local.get $blockBytes)))
    (local.set $src (local.get $x))
    (block $rowsDone
      (loop $rowsLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $dst (i32.add (local.get $y) (i32.mul (local.get $r) (local.get $blockBytes))))
        (local.set $c (i32.const 0))
        (block $colsDone
          (loop $colsLoop
            (br_if $colsDone (i32.ge_u (local.get $c) (local.get $cols)))
            (local.set $i (i32.const 0))
            (block $vecDone
              (loop $vec
                (br_if $vecDone (i32.ge_u (local.get $i) (local.get $vecBytes)))
                (v128.store (i32.add (local.get $dst) (local.get $i)) (v128.load (i32.add (local.get $src) (local.get $i))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $vec)))
            (block $tailDone
              (loop $tail
                (br_if $tailDone (i32.ge_u (local.get $i) (local.get $blockBytes)))
                (f32.store (i32.add (local.get $dst) (local.get $i)) (f32.load (i32.add (local.get $src) (local.get $i))))
                (local.set $i (i32.add (local.get $i) (i32.const 4)))
                (br $tail)))
            (local.set $src (i32.add (local.get $src) (local.get $blockBytes)))
            (local.set $dst (i32.add (local.get $dst) (local.get $outStride)))
            (local.set $c (i32.add (local.get $c) (i32.const 1)))
            (br $colsLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowsLoop))))
;; Stores the four lanes of v at p, p + laneBytes, p + 2 laneBytes, p + 3 laneBytes.
  (func $storeLanes (param $p i32) (param $v v128) (param $laneBytes i32)
    (if (i32.eq (local.get $laneBytes) (i32.const 4))
      (then (v128.store (local.get $p) (local.get $v)))
      (else
        (f32.store (local.get $p) (f32x4.extract_lane 0 (local.get $v)))
        (f32.store (i32.add (local.get $p) (local.get $laneBytes)) (f32x4.extract_lane 1 (local.get $v)))
        (f32.store (i32.add (local.get $p) (i32.shl (local.get $laneBytes) (i32.const 1))) (f32x4.extract_lane 2 (local.get $v)))
        (f32.store (i32.add (local.get $p) (i32.mul (local.get $laneBytes) (i32.const 3))) (f32x4.extract_lane 3 (local.get $v))))))

  ;; A conv filter gradient where one operand has few channels, as a list of passes: each pass is
  ;; one filter tap, one or two neighbouring channels c (, c + 1) of the few-channel operand (`scal`)
  ;; and 4 (or, when wide, 16) channels of the other (`vec`), and sums vec[...] * scal[..., c] over
  ;; every image and output position whose input position lies inside the image. Two channels per
  ;; pass share each vector load. The table holds per pass 8 i32s: vec offset, scal offset (bytes
  ;; from vec and scal to output position (0, 0) of image 0 for that tap and channel: it may lie
  ;; outside the tensor, only positions in range are read), output address, first and end output
  ;; row, first and end output column, flags (1: wide, 2: pair). Loops run image, output row, pass:
  ;; the input rows a row's passes read stay in cache (a loop over passes outermost streamed a whole
  ;; activation once per pass). `sums` is scratch for 64 floats per pass: per image sums (channel c,
  ;; then c + 1), then the totals over images; the totals are stored at each pass's output address
  ;; (channel c + 1's at + pairOutBytes), lane k at + k * laneBytes (vector k at + 4k * laneBytes).
  (func (export "filter_grad")
    (param $vec i32) (param $scal i32) (param $images i32) (param $outRows i32)
    (param $vecImageBytes i32) (param $vecRowBytes i32) (param $vecColBytes i32)
    (param $scalImageBytes i32) (param $scalRowBytes i32) (param $scalColBytes i32)
    (param $table i32) (param $passes i32) (param $sums i32) (param $laneBytes i32) (param $pairOutBytes i32)
    (local $b i32) (local $row i32) (local $p i32) (local $entry i32) (local $acc i32) (local $i i32) (local $end i32)
    (local $pv i32) (local $ps i32) (local $n i32) (local $flags i32) (local $dst i32) (local $total i32)
    (local $s v128) (local $t v128) (local $v v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $b0 v128) (local $b1 v128) (local $b2 v128) (local $b3 v128)
    ;; per image sums in the first half of the scratch, totals in the second; all start at zero
    (local.set $end (i32.shl (local.get $passes) (i32.const 8)))
    (local.set $i (i32.const 0))
    (block $zeroDone
      (loop $zeroLoop
        (br_if $zeroDone (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $sums) (local.get $i)) (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $zeroLoop)))
    (block $imagesDone
      (loop $imagesLoop
        (br_if $imagesDone (i32.ge_u (local.get $b) (local.get $images)))
        (local.set $row (i32.const 0))
        (block $rowsDone
          (loop $rowsLoop
            (br_if $rowsDone (i32.ge_u (local.get $row) (local.get $outRows)))
            (local.set $p (i32.const 0))
            (block $passesDone
              (loop $passesLoop
                (br_if $passesDone (i32.ge_u (local.get $p) (local.get $passes)))
                (local.set $entry (i32.add (local.get $table) (i32.shl (local.get $p) (i32.const 5))))
                (if (i32.and
                      (i32.ge_s (local.get $row) (i32.load offset=12 (local.get $entry)))
                      (i32.lt_s (local.get $row) (i32.load offset=16 (local.get $entry))))
                  (then
                    (local.set $acc (i32.add (local.get $sums) (i32.shl (local.get $p) (i32.const 7))))
                    (local.set $pv (i32.add (i32.add (local.get $vec) (i32.load (local.get $entry)))
                      (i32.add (i32.mul (local.get $b) (local.get $vecImageBytes))
                        (i32.add (i32.mul (local.get $row) (local.get $vecRowBytes))
                          (i32.mul (i32.load offset=20 (local.get $entry)) (local.get $vecColBytes))))))
                    (local.set $ps (i32.add (i32.add (local.get $scal) (i32.load offset=4 (local.get $entry)))
                      (i32.add (i32.mul (local.get $b) (local.get $scalImageBytes))
                        (i32.add (i32.mul (local.get $row) (local.get $scalRowBytes))
                          (i32.mul (i32.load offset=20 (local.get $entry)) (local.get $scalColBytes))))))
                    (local.set $n (i32.sub (i32.load offset=24 (local.get $entry)) (i32.load offset=20 (local.get $entry))))
                    (local.set $flags (i32.load offset=28 (local.get $entry)))
                    (if (i32.and (local.get $flags) (i32.const 1))
                      (then
                        (if (i32.and (local.get $flags) (i32.const 2))
                          (then
                            (local.set $a0 (v128.load offset=0 (local.get $acc)))
                            (local.set $b0 (v128.load offset=64 (local.get $acc)))
                            (local.set $a1 (v128.load offset=16 (local.get $acc)))
                            (local.set $b1 (v128.load offset=80 (local.get $acc)))
                            (local.set $a2 (v128.load offset=32 (local.get $acc)))
                            (local.set $b2 (v128.load offset=96 (local.get $acc)))
                            (local.set $a3 (v128.load offset=48 (local.get $acc)))
                            (local.set $b3 (v128.load offset=112 (local.get $acc)))
                            (block $widePairDone
                              (loop $widePairLoop
                                (br_if $widePairDone (i32.le_s (local.get $n) (i32.const 0)))
                                (local.set $s (v128.load32_splat (local.get $ps)))
                                (local.set $t (v128.load32_splat offset=4 (local.get $ps)))
                                (local.set $v (v128.load offset=0 (local.get $pv)))
                                (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $v) (local.get $t))))
                                (local.set $v (v128.load offset=16 (local.get $pv)))
                                (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $v) (local.get $t))))
                                (local.set $v (v128.load offset=32 (local.get $pv)))
                                (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $b2 (f32x4.add (local.get $b2) (f32x4.mul (local.get $v) (local.get $t))))
                                (local.set $v (v128.load offset=48 (local.get $pv)))
                                (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $b3 (f32x4.add (local.get $b3) (f32x4.mul (local.get $v) (local.get $t))))
                                (local.set $pv (i32.add (local.get $pv) (local.get $vecColBytes)))
                                (local.set $ps (i32.add (local.get $ps) (local.get $scalColBytes)))
                                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                                (br $widePairLoop)))
                            (v128.store offset=0 (local.get $acc) (local.get $a0))
                            (v128.store offset=64 (local.get $acc) (local.get $b0))
                            (v128.store offset=16 (local.get $acc) (local.get $a1))
                            (v128.store offset=80 (local.get $acc) (local.get $b1))
                            (v128.store offset=32 (local.get $acc) (local.get $a2))
                            (v128.store offset=96 (local.get $acc) (local.get $b2))
                            (v128.store offset=48 (local.get $acc) (local.get $a3))
                            (v128.store offset=112 (local.get $acc) (local.get $b3)))
                          (else
                            (local.set $a0 (v128.load offset=0 (local.get $acc)))
                            (local.set $a1 (v128.load offset=16 (local.get $acc)))
                            (local.set $a2 (v128.load offset=32 (local.get $acc)))
                            (local.set $a3 (v128.load offset=48 (local.get $acc)))
                            (block $wideSingleDone
                              (loop $wideSingleLoop
                                (br_if $wideSingleDone (i32.le_s (local.get $n) (i32.const 0)))
                                (local.set $s (v128.load32_splat (local.get $ps)))
                                (local.set $v (v128.load offset=0 (local.get $pv)))
                                (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $v (v128.load offset=16 (local.get $pv)))
                                (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $v (v128.load offset=32 (local.get $pv)))
                                (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $v (v128.load offset=48 (local.get $pv)))
                                (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $pv (i32.add (local.get $pv) (local.get $vecColBytes)))
                                (local.set $ps (i32.add (local.get $ps) (local.get $scalColBytes)))
                                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                                (br $wideSingleLoop)))
                            (v128.store offset=0 (local.get $acc) (local.get $a0))
                            (v128.store offset=16 (local.get $acc) (local.get $a1))
                            (v128.store offset=32 (local.get $acc) (local.get $a2))
                            (v128.store offset=48 (local.get $acc) (local.get $a3)))))
                      (else
                        (if (i32.and (local.get $flags) (i32.const 2))
                          (then
                            (local.set $a0 (v128.load offset=0 (local.get $acc)))
                            (local.set $b0 (v128.load offset=64 (local.get $acc)))
                            (block $narrowPairDone
                              (loop $narrowPairLoop
                                (br_if $narrowPairDone (i32.le_s (local.get $n) (i32.const 0)))
                                (local.set $s (v128.load32_splat (local.get $ps)))
                                (local.set $t (v128.load32_splat offset=4 (local.get $ps)))
                                (local.set $v (v128.load offset=0 (local.get $pv)))
                                (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $v) (local.get $t))))
                                (local.set $pv (i32.add (local.get $pv) (local.get $vecColBytes)))
                                (local.set $ps (i32.add (local.get $ps) (local.get $scalColBytes)))
                                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                                (br $narrowPairLoop)))
                            (v128.store offset=0 (local.get $acc) (local.get $a0))
                            (v128.store offset=64 (local.get $acc) (local.get $b0)))
                          (else
                            (local.set $a0 (v128.load offset=0 (local.get $acc)))
                            (block $narrowSingleDone
                              (loop $narrowSingleLoop
                                (br_if $narrowSingleDone (i32.le_s (local.get $n) (i32.const 0)))
                                (local.set $s (v128.load32_splat (local.get $ps)))
                                (local.set $v (v128.load offset=0 (local.get $pv)))
                                (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (local.get $s))))
                                (local.set $pv (i32.add (local.get $pv) (local.get $vecColBytes)))
                                (local.set $ps (i32.add (local.get $ps) (local.get $scalColBytes)))
                                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                                (br $narrowSingleLoop)))
                            (v128.store offset=0 (local.get $acc) (local.get $a0))))))))
                (local.set $p (i32.add (local.get $p) (i32.const 1)))
                (br $passesLoop)))
            (local.set $row (i32.add (local.get $row) (i32.const 1)))
            (br $rowsLoop)))
        ;; totals += this image's sums; the sums restart at zero
        (local.set $i (i32.const 0))
        (local.set $end (i32.shl (local.get $passes) (i32.const 7)))
        (block $foldDone
          (loop $foldLoop
            (br_if $foldDone (i32.ge_u (local.get $i) (local.get $end)))
            (local.set $acc (i32.add (local.get $sums) (local.get $i)))
            (v128.store (i32.add (local.get $acc) (local.get $end))
              (f32x4.add (v128.load (i32.add (local.get $acc) (local.get $end))) (v128.load (local.get $acc))))
            (v128.store (local.get $acc) (v128.const f32x4 0 0 0 0))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $foldLoop)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $imagesLoop)))
    (local.set $p (i32.const 0))
    (block $storeDone
      (loop $storeLoop
        (br_if $storeDone (i32.ge_u (local.get $p) (local.get $passes)))
        (local.set $entry (i32.add (local.get $table) (i32.shl (local.get $p) (i32.const 5))))
        (local.set $flags (i32.load offset=28 (local.get $entry)))
        (local.set $total (i32.add (i32.add (local.get $sums) (i32.shl (local.get $passes) (i32.const 7))) (i32.shl (local.get $p) (i32.const 7))))
        (local.set $dst (i32.load offset=8 (local.get $entry)))
        (call $storeSums (local.get $dst) (local.get $total) (local.get $flags) (local.get $laneBytes))
        (if (i32.and (local.get $flags) (i32.const 2))
          (then (call $storeSums (i32.add (local.get $dst) (local.get $pairOutBytes)) (i32.add (local.get $total) (i32.const 64))
            (local.get $flags) (local.get $laneBytes))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $storeLoop))))

  ;; One channel's totals (one vector, or four when flags has bit 1) from `from` to dst, lanes laneBytes apart.
  (func $storeSums (param $dst i32) (param $from i32) (param $flags i32) (param $laneBytes i32)
    (call $storeLanes (local.get $dst) (v128.load (local.get $from)) (local.get $laneBytes))
    (if (i32.and (local.get $flags) (i32.const 1))
      (then
        (call $storeLanes (i32.add (local.get $dst) (i32.shl (local.get $laneBytes) (i32.const 2))) (v128.load offset=16 (local.get $from)) (local.get $laneBytes))
        (call $storeLanes (i32.add (local.get $dst) (i32.shl (local.get $laneBytes) (i32.const 3))) (v128.load offset=32 (local.get $from)) (local.get $laneBytes))
        (call $storeLanes (i32.add (local.get $dst) (i32.mul (local.get $laneBytes) (i32.const 12))) (v128.load offset=48 (local.get $from)) (local.get $laneBytes)))))

  ;; dx = 0, then dx[b, oh*sh + i - pt, ow*sw + j - pl, :] += cols[b, oh, ow, i, j, :] for every
  ;; position that lands inside dx: the col2im that turns the GEMM dy x W^T into the input gradient
  ;; of a convolution. Channels in whole vectors; cols is read once, in order.
  (func (export "col2im")
    (param $cols i32) (param $dx i32) (param $images i32) (param $outRows i32) (param $outCols i32)
    (param $rows i32) (param $width i32) (param $channels i32)
    (param $kh i32) (param $kw i32) (param $sh i32) (param $sw i32) (param $pt i32) (param $pl i32)
    (local $pixelBytes i32) (local $end i32) (local $q i32) (local $b i32) (local $oh i32) (local $ow i32)
    (local $i i32) (local $j i32) (local $h i32) (local $w i32) (local $d i32) (local $c i32) (local $p i32)
    (local.set $pixelBytes (i32.shl (local.get $channels) (i32.const 2)))
    (local.set $end (i32.add (local.get $dx)
      (i32.mul (i32.mul (local.get $images) (i32.mul (local.get $rows) (local.get $width))) (local.get $pixelBytes))))
    (local.set $q (local.get $dx))
    (block $zeroDone
      (loop $zeroLoop
        (br_if $zeroDone (i32.ge_u (local.get $q) (local.get $end)))
        (v128.store (local.get $q) (v128.const f32x4 0 0 0 0))
        (local.set $q (i32.add (local.get $q) (i32.const 16)))
        (br $zeroLoop)))
    (local.set $p (local.get $cols))
    (block $imagesDone (loop $imagesLoop
      (br_if $imagesDone (i32.ge_u (local.get $b) (local.get $images)))
      (local.set $oh (i32.const 0))
      (block $ohDone (loop $ohLoop
        (br_if $ohDone (i32.ge_u (local.get $oh) (local.get $outRows)))
        (local.set $ow (i32.const 0))
        (block $owDone (loop $owLoop
          (br_if $owDone (i32.ge_u (local.get $ow) (local.get $outCols)))
          (local.set $i (i32.const 0))
          (block $iDone (loop $iLoop
            (br_if $iDone (i32.ge_u (local.get $i) (local.get $kh)))
            (local.set $h (i32.sub (i32.add (i32.mul (local.get $oh) (local.get $sh)) (local.get $i)) (local.get $pt)))
            (local.set $j (i32.const 0))
            (block $jDone (loop $jLoop
              (br_if $jDone (i32.ge_u (local.get $j) (local.get $kw)))
              (local.set $w (i32.sub (i32.add (i32.mul (local.get $ow) (local.get $sw)) (local.get $j)) (local.get $pl)))
              ;; unsigned compares also reject negative h and w
              (if (i32.and (i32.lt_u (local.get $h) (local.get $rows)) (i32.lt_u (local.get $w) (local.get $width)))
                (then
                  (local.set $d (i32.add (local.get $dx) (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $rows)) (local.get $h))
                    (local.get $width)) (local.get $w)) (local.get $pixelBytes))))
                  (local.set $c (i32.const 0))
                  (block $cDone (loop $cLoop
                    (br_if $cDone (i32.ge_u (local.get $c) (local.get $pixelBytes)))
                    (v128.store (i32.add (local.get $d) (local.get $c))
                      (f32x4.add (v128.load (i32.add (local.get $d) (local.get $c))) (v128.load (i32.add (local.get $p) (local.get $c)))))
                    (local.set $c (i32.add (local.get $c) (i32.const 16)))
                    (br $cLoop)))))
              (local.set $p (i32.add (local.get $p) (local.get $pixelBytes)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $jLoop)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $iLoop)))
          (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
          (br $owLoop)))
        (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
        (br $ohLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $imagesLoop))))
;; One Adam update of n floats into new buffers, in the order and float32 roundings of the tf ops
  ;; it replaces (src/optim/adam.ts), so both give the same bits: with `decay`, g += p * wd; then
  ;; m' = m b1 + g (1 - b1), v' = v b2 + g^2 (1 - b2), p' = p - m' step / (sqrt(v') + eps).
  ;; Eleven tf ops made eleven passes over every variable and ~800 kernel calls per VAE-GAN step.
  (func (export "adam")
    (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $pOut i32) (param $mOut i32) (param $vOut i32)
    (param $n i32) (param $decay i32) (param $wd f32) (param $b1 f32) (param $c1 f32) (param $b2 f32) (param $c2 f32)
    (param $step f32) (param $eps f32)
    (local $i i32) (local $end i32) (local $vectorEnd i32)
    (local $gv v128) (local $mv v128) (local $vv v128) (local $pv v128)
    (local $gs f32) (local $ms f32) (local $vs f32) (local $ps f32)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (local.set $vectorEnd (i32.and (local.get $end) (i32.const -16)))
    (block $vectorsDone
      (loop $vectors
        (br_if $vectorsDone (i32.ge_u (local.get $i) (local.get $vectorEnd)))
        (local.set $pv (v128.load (i32.add (local.get $p) (local.get $i))))
        (local.set $gv (v128.load (i32.add (local.get $g) (local.get $i))))
        (if (local.get $decay)
          (then (local.set $gv (f32x4.add (local.get $gv) (f32x4.mul (local.get $pv) (f32x4.splat (local.get $wd)))))))
        (local.set $mv (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $i))) (f32x4.splat (local.get $b1)))
          (f32x4.mul (local.get $gv) (f32x4.splat (local.get $c1)))))
        (local.set $vv (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $i))) (f32x4.splat (local.get $b2)))
          (f32x4.mul (f32x4.mul (local.get $gv) (local.get $gv)) (f32x4.splat (local.get $c2)))))
        (v128.store (i32.add (local.get $mOut) (local.get $i)) (local.get $mv))
        (v128.store (i32.add (local.get $vOut) (local.get $i)) (local.get $vv))
        (v128.store (i32.add (local.get $pOut) (local.get $i))
          (f32x4.sub (local.get $pv)
            (f32x4.div (f32x4.mul (local.get $mv) (f32x4.splat (local.get $step)))
              (f32x4.add (f32x4.sqrt (local.get $vv)) (f32x4.splat (local.get $eps))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $vectors)))
    (block $done
      (loop $scalars
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $ps (f32.load (i32.add (local.get $p) (local.get $i))))
        (local.set $gs (f32.load (i32.add (local.get $g) (local.get $i))))
        (if (local.get $decay)
          (then (local.set $gs (f32.add (local.get $gs) (f32.mul (local.get $ps) (local.get $wd))))))
        (local.set $ms (f32.add (f32.mul (f32.load (i32.add (local.get $m) (local.get $i))) (local.get $b1))
          (f32.mul (local.get $gs) (local.get $c1))))
        (local.set $vs (f32.add (f32.mul (f32.load (i32.add (local.get $v) (local.get $i))) (local.get $b2))
          (f32.mul (f32.mul (local.get $gs) (local.get $gs)) (local.get $c2))))
        (f32.store (i32.add (local.get $mOut) (local.get $i)) (local.get $ms))
        (f32.store (i32.add (local.get $vOut) (local.get $i)) (local.get $vs))
        (f32.store (i32.add (local.get $pOut) (local.get $i))
          (f32.sub (local.get $ps)
            (f32.div (f32.mul (local.get $ms) (local.get $step)) (f32.add (f32.sqrt (local.get $vs)) (local.get $eps)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $scalars))))
)
