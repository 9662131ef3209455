// The configuration of an experiment, typed, with every default in this one file.
// YAML files in configs/ override these; `--set section.key=value` overrides the file.
// Validation (unknown keys, types, ranges, cross-field checks) lives in ./validate.ts.

export type ModelName = 'vae' | 'beta_vae' | 'mssim_vae' | 'cvae' | 'joint_vae' | 'vae_gan';
export type DatasetFormat = 'medmnist' | 'gleason' | 'folder';
/** Compute backends, `auto` first: the one list that flags, validation and help text are built from. */
export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'native', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface ModelConfig {
  name: ModelName;
  /** 1 (grey) or 3 (RGB); images are converted to this on load. */
  in_channels: 1 | 3;
  /** Square side in pixels: a power of two the conv stack halves down to 2, e.g. 32, 64, 128, 256. */
  image_size: number;
  latent_dim: number;
  hidden_dims: number[];
  /** Weight of the KL term: a number, or 'M_N' for batch/dataset size as in PyTorch-VAE. */
  kld_weight: number | 'M_N';
  /** beta-VAE: 'H' (Higgins, beta * KL) or 'B' (Burgess, gamma * |KL - C|). */
  loss_type: 'H' | 'B';
  beta: number;
  gamma: number;
  max_capacity: number;
  capacity_max_iter: number;
  /** Conditional VAE: label width (classes for one-hot, findings for multi-hot). 0 = from the dataset. */
  num_classes: number;
  /** JointVAE: number of discrete latent variables and categories of each. */
  categorical_dim: number;
  num_discrete: number;
  temperature: number;
  min_temperature: number;
  anneal_rate: number;
  anneal_steps: number;
  /** JointVAE capacities [min, max, gamma, iterations] for the continuous and discrete parts. */
  cont_capacity: [number, number, number, number];
  disc_capacity: [number, number, number, number];
  /** JointVAE: weight of the reconstruction term against the capacity terms (PyTorch-VAE's alpha). */
  alpha: number;
  /** VAE-GAN: weight of the learned-similarity term in the decoder's loss (Larsen's gamma). */
  recon_gamma: number;
  /** VAE-GAN: which discriminator conv block's output (1 = first) defines the learned similarity. */
  feature_layer: number;
  /**
   * VAE-GAN: weight of a unit-variance Gaussian likelihood of the pixels added to the learned
   * similarity (0 = features only, as Larsen et al.).
   */
  pixel_weight: number;
  /**
   * VAE-GAN: balance of the adversarial game. When the discriminator's loss on real or on fake
   * images falls below gan_equilibrium - gan_margin it sits the step out; when one rises above
   * gan_equilibrium + gan_margin the decoder's adversarial term does. gan_margin 0 = never.
   */
  gan_equilibrium: number;
  gan_margin: number;
  /**
   * How the decoder doubles its side: 'transpose' (3x3 stride-2 transposed convolutions, as
   * PyTorch-VAE) or 'resize' (nearest-neighbour doubling, then a 3x3 conv: no checkerboard, Odena
   * et al. 2016). 'transpose' is the default so that checkpoints written before this key load as
   * they were trained; configs/vae_gan_retinamnist.yaml picks 'resize' (docs/vae-gan.md).
   */
  upsample: 'transpose' | 'resize';
  /**
   * MS-SSIM VAE: share of the reconstruction term given to the pixels' mean absolute error, the
   * rest to 1 - MS-SSIM (Zhao et al. 2017's mixed loss, their 1 - alpha = 0.16). MS-SSIM alone
   * barely sees a region's brightness and colour; 0 = MS-SSIM alone, as PyTorch-VAE.
   */
  l1_fraction: number;
}

export interface DataConfig {
  format: DatasetFormat;
  /** npz file, Gleason root, or image folder. */
  path: string;
  /** MedMNIST: which split trains; Gleason: 'train' or 'test' CSV. */
  split: string;
  val_split: string;
  resize: 'area' | 'bilinear';
  random_flip: boolean;
  random_rot90: boolean;
  /**
   * Decode threads in the piscina pool. 0 transforms on the training thread: right for MedMNIST's
   * raw pixels (a resize per image, no decoding), and it leaves data-parallel workers the cores.
   * JPEG/PNG datasets (Gleason, folders) want 1-2.
   */
  threads: number;
  prefetch: number;
  /** Stop on a corrupt image instead of skipping it with a warning. */
  strict: boolean;
  /** Last partial global batch: dropped (true) or padded by wrapping around the epoch (false). */
  drop_last: boolean;
  /** Train on these class indices only (e.g. [0]: an anomaly detector's "normal"); [] = all. */
  classes: number[];
}

export interface TrainConfig {
  epochs: number;
  /** Global batch: summed over workers and micro-batches. */
  batch_size: number;
  /**
   * Largest batch one forward/backward pass holds (BatchNorm normalises over it). 'auto', the
   * default, picks the largest that fits memory_budget_mb (src/train/micro-batch.ts): on CPU
   * backends the default job (64x64, batch 64) gets all 64 in one pass; on a WebGPU adapter the
   * model's layer shapes must also fit the adapter's buffer limits, and a model that cannot fit
   * even one image is refused in one line before training starts.
   */
  micro_batch: number | 'auto';
  /**
   * MB a training step may take under 'auto': process memory on CPU backends
   * (wasm and native cap it at 3500, their 4 GB heap), GPU memory on WebGPU, which does not say how
   * much a device has: raise it on a GPU with more (e.g. 60000 on an 80 GB H100).
   */
  memory_budget_mb: number;
  lr: number;
  /** VAE-GAN: per-network learning rates; absent networks use lr. */
  lr_discriminator: number;
  weight_decay: number;
  /**
   * Clip each param group's gradients to this global L2 norm before Adam, after they are averaged
   * over micro-batches and workers (torch.nn.utils.clip_grad_norm_); 0 = no clipping.
   */
  grad_clip_norm: number;
  /** Exponential lr decay per epoch (PyTorch-VAE's scheduler_gamma); 1 = constant. */
  scheduler_gamma: number;
  seed: number;
  backend: BackendChoice;
  /**
   * Compute threads of the native backend (onnxruntime); 0 = every core, shared among medvae-dist's
   * workers on one machine. Other backends ignore it.
   */
  threads: number;
  /** webgpu: accept a software adapter (SwiftShader, lavapipe) for tests; `auto` never picks one. */
  allow_software_gpu: boolean;
  /**
   * Choices that do not depend on timing, so that a run computes the same bits in any layout of
   * workers and threads (native: no race of graphs, the run's plan or a fixed choice; see
   * docs/native.md). false: the native kernels race their graphs for the fastest, per process.
   * 'auto' (the default): on for runs of several workers, off for one process, where it costs speed
   * (as torch.use_deterministic_algorithms is off unless asked for).
   */
  deterministic: boolean | 'auto';
  /**
   * The denoising criterion (Im et al. 2017): the encoder reads a corrupted copy of each training
   * image, the reconstruction target stays the clean one. 'none', or a noise on the [0, 1] scale
   * as `medvae denoise --noise` takes it: gaussian:SIGMA, saltpepper:P, poisson:PEAK.
   */
  corrupt: string;
  max_steps: number;
  /** Stop when a loss exceeds this many times its running median (explosion), besides NaN/Inf. */
  divergence_factor: number;
  log_every: number;
}

export interface OutputConfig {
  dir: string;
  name: string;
  checkpoint_every_epochs: number;
  /** Also checkpoint every this many steps (0 = only at epoch ends): what a restarted worker group resumes from. */
  checkpoint_every_steps: number;
  keep_last: number;
  sample_grid: number;
  metrics_port: number;
  metrics_host: string;
}

export interface ExperimentConfig {
  model: ModelConfig;
  data: DataConfig;
  train: TrainConfig;
  output: OutputConfig;
}

export const DEFAULT_CONFIG: ExperimentConfig = {
  model: {
    name: 'vae',
    in_channels: 3,
    image_size: 64,
    latent_dim: 128,
    hidden_dims: [32, 64, 128, 256, 512],
    kld_weight: 0.00025,
    loss_type: 'B',
    beta: 4,
    gamma: 1000,
    max_capacity: 25,
    capacity_max_iter: 100000,
    num_classes: 0,
    categorical_dim: 10,
    num_discrete: 1,
    temperature: 0.5,
    min_temperature: 0.2,
    anneal_rate: 0.00003,
    anneal_steps: 500,
    cont_capacity: [0.0, 5.0, 25.0, 25000],
    disc_capacity: [0.0, 5.0, 25.0, 25000],
    alpha: 30,
    recon_gamma: 1e-3,
    feature_layer: 3,
    pixel_weight: 0,
    gan_equilibrium: 0.68,
    gan_margin: 0,
    upsample: 'transpose',
    l1_fraction: 0,
  },
  data: {
    format: 'medmnist',
    path: 'data/retinamnist.npz',
    split: 'train',
    val_split: 'val',
    resize: 'bilinear',
    random_flip: false,
    random_rot90: false,
    threads: 0,
    prefetch: 4,
    strict: false,
    drop_last: true,
    classes: [],
  },
  train: {
    epochs: 100,
    batch_size: 64,
    micro_batch: 'auto',
    memory_budget_mb: 3000,
    lr: 0.005,
    lr_discriminator: 0.0003,
    weight_decay: 0,
    grad_clip_norm: 0,
    scheduler_gamma: 0.95,
    seed: 1265,
    backend: 'auto',
    threads: 0,
    allow_software_gpu: false,
    deterministic: 'auto',
    corrupt: 'none',
    max_steps: 0,
    divergence_factor: 1000,
    log_every: 10,
  },
  output: {
    dir: 'runs',
    name: '',
    checkpoint_every_epochs: 1,
    checkpoint_every_steps: 0,
    keep_last: 3,
    sample_grid: 64,
    // The port OpenTelemetry's Prometheus exporter uses.
    metrics_port: 9464,
    metrics_host: '127.0.0.1',
  },
};
