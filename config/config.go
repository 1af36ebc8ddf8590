// Package config is imgcap's YAML experiment schema: typed sections for the model, the data,
// training, evaluation and serving, their defaults, and validation that reports every problem
// at once with its key path (and YAML line where there is one).
//
// Values are layered with viper, lowest first: defaults, the YAML file, IMGCAP_* environment
// variables (IMGCAP_TRAIN_LR for train.lr), then --set key=value overrides.
package config

// Config is one reproducible experiment.
type Config struct {
	Model ModelConfig `mapstructure:"model" yaml:"model" json:"model"`
	Data  DataConfig  `mapstructure:"data" yaml:"data" json:"data"`
	Train TrainConfig `mapstructure:"train" yaml:"train" json:"train"`
	Eval  EvalConfig  `mapstructure:"eval" yaml:"eval" json:"eval"`
	Serve ServeConfig `mapstructure:"serve" yaml:"serve" json:"serve"`
}

// ModelConfig selects and sizes the model.
type ModelConfig struct {
	// Arch is the model family: vgg16_lstm, vit_gpt2, blip_caption or blip_retrieval.
	Arch string `mapstructure:"arch" yaml:"arch" json:"arch"`
	// Pretrained is what to start from ("" = random init): for vgg16_lstm a torchvision
	// vgg16/vgg16_bn state dict (.pth or .safetensors) for the encoder; for the transformer
	// families a Hugging Face model folder or hub id.
	Pretrained string `mapstructure:"pretrained" yaml:"pretrained" json:"pretrained"`
	// EncoderPretrained and DecoderPretrained build an encoder-decoder from two checkpoints.
	EncoderPretrained string `mapstructure:"encoder_pretrained" yaml:"encoder_pretrained" json:"encoder_pretrained"`
	DecoderPretrained string `mapstructure:"decoder_pretrained" yaml:"decoder_pretrained" json:"decoder_pretrained"`
	// ImageSize is the square input resolution in pixels.
	ImageSize int `mapstructure:"image_size" yaml:"image_size" json:"image_size"`
	// EmbedDim and HiddenDim size the VGG16+LSTM decoder (256 in the original notebook).
	EmbedDim  int `mapstructure:"embed_dim" yaml:"embed_dim" json:"embed_dim"`
	HiddenDim int `mapstructure:"hidden_dim" yaml:"hidden_dim" json:"hidden_dim"`
	// Dropout is the decoder dropout probability (0.4 in the original notebook).
	Dropout float64 `mapstructure:"dropout" yaml:"dropout" json:"dropout"`
	// DropPath is the stochastic depth of the image transformer's last layer in training
	// (BLIP's drop_path_rate; layers in between get linearly spaced rates from 0). BLIP
	// families only; 0 = off.
	DropPath float64 `mapstructure:"drop_path" yaml:"drop_path" json:"drop_path"`
	// VGGWidth scales the VGG16 channel counts (1 = torchvision's VGG16; smaller for CPU demos).
	VGGWidth float64 `mapstructure:"vgg_width" yaml:"vgg_width" json:"vgg_width"`
	// VGGBatchNorm uses torchvision's vgg16_bn (BatchNorm after each conv): far easier to train
	// from scratch than plain VGG16.
	VGGBatchNorm bool `mapstructure:"vgg_batch_norm" yaml:"vgg_batch_norm" json:"vgg_batch_norm"`
	// FreezeEncoder keeps the image encoder's weights fixed.
	FreezeEncoder bool `mapstructure:"freeze_encoder" yaml:"freeze_encoder" json:"freeze_encoder"`
	// FreezeDecoder keeps the text decoder's weights fixed (cross-attention stays trainable).
	FreezeDecoder bool `mapstructure:"freeze_decoder" yaml:"freeze_decoder" json:"freeze_decoder"`
	// MaxLength is the longest caption in tokens, special tokens included.
	MaxLength int `mapstructure:"max_length" yaml:"max_length" json:"max_length"`
	// MinWordCount drops rarer words from a word vocabulary.
	MinWordCount int `mapstructure:"min_word_count" yaml:"min_word_count" json:"min_word_count"`
	// MinWordLength is the shortest word a word vocabulary keeps: 2 is the notebook's rule
	// (drops "a"), 1 keeps every word.
	MinWordLength int `mapstructure:"min_word_length" yaml:"min_word_length" json:"min_word_length"`
	// Tokenizer is a tokenizer folder or file; "" uses the model's own.
	Tokenizer string `mapstructure:"tokenizer" yaml:"tokenizer" json:"tokenizer"`
	// Prompt is the text the caption continues (BLIP: "a picture of ").
	Prompt string `mapstructure:"prompt" yaml:"prompt" json:"prompt"`
	// HFConfig builds a transformer model from scratch (no pretrained weights): Hugging Face
	// config.json keys over the family's defaults, e.g. {encoder: {hidden_size: 64}, decoder:
	// {n_layer: 2}} for vit_gpt2. Token ids and vocab_size come from the tokenizer.
	HFConfig map[string]any `mapstructure:"hf_config" yaml:"hf_config" json:"hf_config"`
	// DType is the compute type: float32 or bfloat16 (float16 on CUDA only).
	DType string `mapstructure:"dtype" yaml:"dtype" json:"dtype"`
}

// DataConfig says where the captions and images are and how batches are made.
type DataConfig struct {
	// Format of the annotations: auto (detected), flickr-token (Flickr8k.token.txt, Flickr30k
	// results_20130124.token), flickr8k-csv (Kaggle captions.txt), flickr30k-csv (Kaggle
	// results.csv), karpathy (dataset_*.json) or coco (captions_*.json).
	Format string `mapstructure:"format" yaml:"format" json:"format"`
	// Annotations is the caption file (token file, CSV or JSON).
	Annotations string `mapstructure:"annotations" yaml:"annotations" json:"annotations"`
	// Images is the folder holding the image files.
	Images string `mapstructure:"images" yaml:"images" json:"images"`
	// SplitFiles name files listing the images of each split, e.g. train: Flickr_8k.trainImages.txt.
	SplitFiles map[string]string `mapstructure:"split_files" yaml:"split_files" json:"split_files"`
	// SplitFractions split by image when the data has no splits: train, val, test.
	SplitFractions []float64 `mapstructure:"split_fractions" yaml:"split_fractions" json:"split_fractions"`
	// TrainSplit, ValSplit and TestSplit name the splits used for each role.
	TrainSplit string `mapstructure:"train_split" yaml:"train_split" json:"train_split"`
	ValSplit   string `mapstructure:"val_split" yaml:"val_split" json:"val_split"`
	TestSplit  string `mapstructure:"test_split" yaml:"test_split" json:"test_split"`
	// SkipBad continues past malformed lines and missing images, reporting counts.
	SkipBad bool `mapstructure:"skip_bad" yaml:"skip_bad" json:"skip_bad"`
	// Workers is the number of image-decoding goroutines (0 = one per core).
	Workers int `mapstructure:"workers" yaml:"workers" json:"workers"`
	// Prefetch is the number of batches prepared ahead.
	Prefetch int `mapstructure:"prefetch" yaml:"prefetch" json:"prefetch"`
	// CacheDir stores preprocessed pixels or encoder features ("" = no cache).
	CacheDir string `mapstructure:"cache_dir" yaml:"cache_dir" json:"cache_dir"`
	// Augment configures training-time image augmentation.
	Augment AugmentConfig `mapstructure:"augment" yaml:"augment" json:"augment"`
}

// AugmentConfig configures training-time image augmentation.
type AugmentConfig struct {
	// RandomResizedCrop enables torchvision-style random resized crops with this scale range.
	RandomResizedCrop bool      `mapstructure:"random_resized_crop" yaml:"random_resized_crop" json:"random_resized_crop"`
	Scale             []float64 `mapstructure:"scale" yaml:"scale" json:"scale"`
	// HFlip is the probability of a horizontal flip (0 = off).
	HFlip float64 `mapstructure:"hflip" yaml:"hflip" json:"hflip"`
	// RandAugment is BLIP's RandomAugment, applied after the crop and flip (n 0 = off).
	RandAugment RandAugmentConfig `mapstructure:"rand_augment" yaml:"rand_augment" json:"rand_augment"`
}

// RandAugmentConfig configures BLIP's RandomAugment (transform/randaugment.py): n ops drawn per image
// uniformly with replacement from ops, each applied with probability 0.5 at magnitude m. BLIP's
// recipes use n 2, m 5 and the default ops.
type RandAugmentConfig struct {
	// N is the number of ops drawn per image (0 = off).
	N int `mapstructure:"n" yaml:"n" json:"n"`
	// M is the magnitude on BLIP's 0..10 scale.
	M float64 `mapstructure:"m" yaml:"m" json:"m"`
	// Ops lists the op names drawn from (RandAugmentOps; BLIP's spelling, case-insensitive).
	Ops []string `mapstructure:"ops" yaml:"ops" json:"ops"`
}

// RandAugmentOps are the op names BLIP's randaugment.py defines (image.RandAugmentOps).
var RandAugmentOps = []string{"Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Contrast",
	"Brightness", "Sharpness", "ShearX", "TranslateX", "TranslateY", "Posterize", "ShearY"}

// BLIPRandAugmentOps is the ops list of BLIP's training transforms, the default of data.augment.rand_augment.ops.
func BLIPRandAugmentOps() []string {
	return []string{"Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize", "ShearX", "ShearY",
		"TranslateX", "TranslateY", "Rotate"}
}

// TrainConfig drives the shared trainer.
type TrainConfig struct {
	// OutDir is the run directory (config, checkpoints, logs, plots).
	OutDir string `mapstructure:"out_dir" yaml:"out_dir" json:"out_dir"`
	// Seed makes a run reproducible: weights, data order and augmentation.
	Seed         int64   `mapstructure:"seed" yaml:"seed" json:"seed"`
	Epochs       int     `mapstructure:"epochs" yaml:"epochs" json:"epochs"`
	MaxSteps     int     `mapstructure:"max_steps" yaml:"max_steps" json:"max_steps"`
	BatchSize    int     `mapstructure:"batch_size" yaml:"batch_size" json:"batch_size"`
	GradAccum    int     `mapstructure:"grad_accum" yaml:"grad_accum" json:"grad_accum"`
	Optimizer    string  `mapstructure:"optimizer" yaml:"optimizer" json:"optimizer"`
	LR           float64 `mapstructure:"lr" yaml:"lr" json:"lr"`
	WeightDecay  float64 `mapstructure:"weight_decay" yaml:"weight_decay" json:"weight_decay"`
	Beta1        float64 `mapstructure:"beta1" yaml:"beta1" json:"beta1"`
	Beta2        float64 `mapstructure:"beta2" yaml:"beta2" json:"beta2"`
	Schedule     string  `mapstructure:"schedule" yaml:"schedule" json:"schedule"`
	WarmupSteps  int     `mapstructure:"warmup_steps" yaml:"warmup_steps" json:"warmup_steps"`
	MinLR        float64 `mapstructure:"min_lr" yaml:"min_lr" json:"min_lr"`
	StepEvery    int     `mapstructure:"step_every" yaml:"step_every" json:"step_every"`
	StepGamma    float64 `mapstructure:"step_gamma" yaml:"step_gamma" json:"step_gamma"`
	ClipGradNorm float64 `mapstructure:"clip_grad_norm" yaml:"clip_grad_norm" json:"clip_grad_norm"`
	// LabelSmoothing for the caption cross-entropy (BLIP uses 0.1).
	LabelSmoothing float64 `mapstructure:"label_smoothing" yaml:"label_smoothing" json:"label_smoothing"`
	LogEvery       int     `mapstructure:"log_every" yaml:"log_every" json:"log_every"`
	EvalEvery      int     `mapstructure:"eval_every" yaml:"eval_every" json:"eval_every"`
	SaveEvery      int     `mapstructure:"save_every" yaml:"save_every" json:"save_every"`
	// BestMetric picks the checkpoint kept as best: val_loss, bleu4, cider, ...
	BestMetric string `mapstructure:"best_metric" yaml:"best_metric" json:"best_metric"`
	// EarlyStopPatience stops after this many evaluations without improvement (0 = never).
	EarlyStopPatience int `mapstructure:"early_stop_patience" yaml:"early_stop_patience" json:"early_stop_patience"`
}

// EvalConfig controls caption generation and scoring.
type EvalConfig struct {
	Split         string   `mapstructure:"split" yaml:"split" json:"split"`
	BatchSize     int      `mapstructure:"batch_size" yaml:"batch_size" json:"batch_size"`
	MaxImages     int      `mapstructure:"max_images" yaml:"max_images" json:"max_images"`
	Metrics       []string `mapstructure:"metrics" yaml:"metrics" json:"metrics"`
	NumBeams      int      `mapstructure:"num_beams" yaml:"num_beams" json:"num_beams"`
	MaxNewTokens  int      `mapstructure:"max_new_tokens" yaml:"max_new_tokens" json:"max_new_tokens"`
	MinNewTokens  int      `mapstructure:"min_new_tokens" yaml:"min_new_tokens" json:"min_new_tokens"`
	LengthPenalty float64  `mapstructure:"length_penalty" yaml:"length_penalty" json:"length_penalty"`
	// NoRepeatNgram forbids repeating n-grams of this size (0 = off).
	NoRepeatNgram int `mapstructure:"no_repeat_ngram" yaml:"no_repeat_ngram" json:"no_repeat_ngram"`
}

// ServeConfig configures `imgcap serve`.
type ServeConfig struct {
	Addr           string   `mapstructure:"addr" yaml:"addr" json:"addr"`
	Models         []string `mapstructure:"models" yaml:"models" json:"models"`
	MaxBatch       int      `mapstructure:"max_batch" yaml:"max_batch" json:"max_batch"`
	MaxWaitMS      int      `mapstructure:"max_wait_ms" yaml:"max_wait_ms" json:"max_wait_ms"`
	TimeoutS       float64  `mapstructure:"timeout_s" yaml:"timeout_s" json:"timeout_s"`
	MaxUploadBytes int64    `mapstructure:"max_upload_bytes" yaml:"max_upload_bytes" json:"max_upload_bytes"`
	MaxPixels      int64    `mapstructure:"max_pixels" yaml:"max_pixels" json:"max_pixels"`
}

// Default returns the configuration every file starts from.
func Default() Config {
	return Config{
		Model: ModelConfig{
			Arch: "vgg16_lstm", ImageSize: 224, EmbedDim: 256, HiddenDim: 256, Dropout: 0.4,
			VGGWidth: 1, MaxLength: 40, MinWordCount: 1, MinWordLength: 2, DType: "float32",
		},
		Data: DataConfig{
			Format: "auto", SplitFractions: []float64{0.9, 0.1, 0},
			TrainSplit: "train", ValSplit: "val", TestSplit: "test",
			Prefetch: 2, SplitFiles: map[string]string{},
			Augment: AugmentConfig{Scale: []float64{0.5, 1},
				RandAugment: RandAugmentConfig{M: 5, Ops: BLIPRandAugmentOps()}},
		},
		Train: TrainConfig{
			OutDir: "runs/default", Seed: 1, Epochs: 20, BatchSize: 32, GradAccum: 1,
			Optimizer: "adamw", LR: 1e-3, WeightDecay: 0, Beta1: 0.9, Beta2: 0.999,
			Schedule: "constant", StepGamma: 0.1, LogEvery: 10, BestMetric: "val_loss",
		},
		Eval: EvalConfig{
			Split: "test", BatchSize: 16, Metrics: []string{"bleu", "rouge", "cider"},
			NumBeams: 1, MaxNewTokens: 20, LengthPenalty: 1,
		},
		Serve: ServeConfig{
			Addr: "127.0.0.1:8080", MaxBatch: 8, MaxWaitMS: 10, TimeoutS: 120,
			MaxUploadBytes: 20 << 20, MaxPixels: 50_000_000,
		},
	}
}
