namespace Diffusion.Trainer.Torch;

/// <summary>An error raised inside libtorch, with libtorch's own message.</summary>
public sealed class TorchException(string message) : Exception(message);
