using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Trainer.Training;

/// <summary>What a checkpoint holds besides tensors.</summary>
public sealed record CheckpointInfo(int Step, TrainConfig Config, string[] ClassNames, double LastLoss);

/// <summary>
/// A training state in one file: a JSON header (step, config, class names) and a payload of TorchSharp's own binary
/// format (module and optimizer state dicts, generator states), guarded by the payload's SHA-256 so that a damaged
/// file is refused instead of resumed. Written to a temporary name, flushed to disk and renamed into place.
/// </summary>
/// <remarks>
/// Layout: "DIFFCKPT", int32 format version, int32 header length, header (UTF-8 JSON), int64 payload length,
/// 32-byte SHA-256 of header + payload, payload. All integers little-endian.
/// </remarks>
public static class Checkpoint
{
    private static readonly byte[] Magic = "DIFFCKPT"u8.ToArray();
    private const int FormatVersion = 2;
    private const int MaxHeaderBytes = 1 << 20;
    private const int HashBytes = 32;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>
    /// Writes <paramref name="info"/> and the payload <paramref name="writePayload"/> produces to
    /// <paramref name="path"/>, atomically (see <see cref="AtomicFile"/>).
    /// </summary>
    public static void Save(string path, CheckpointInfo info, Action<BinaryWriter> writePayload)
    {
        var full = Path.GetFullPath(path);
        try
        {
            AtomicFile.Write(full, stream =>
            {
                var header = JsonSerializer.SerializeToUtf8Bytes(info, Json);
                using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
                writer.Write(Magic);
                writer.Write(FormatVersion);
                writer.Write(header.Length);
                writer.Write(header);
                writer.Write(0L);                 // payload length, filled in below
                writer.Write(new byte[HashBytes]); // hash, filled in below
                long payloadStart = stream.Position;
                writePayload(writer);
                writer.Flush();
                long payloadLength = stream.Position - payloadStart;
                stream.Position = payloadStart;
                var hash = Digest(header, stream);
                stream.Position = payloadStart - HashBytes - sizeof(long);
                writer.Write(payloadLength);
                writer.Write(hash);
                writer.Flush();
            });
        }
        catch (DiffusionException e) when (e.InnerException is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Writing checkpoint '{full}' failed ({e.InnerException!.Message}); the previous " +
                $"checkpoint, if any, is intact.", e);
        }
    }

    /// <summary>
    /// Removes the temporaries of writers of <paramref name="path"/> that were killed (their process is gone).
    /// </summary>
    public static void RemoveStaleTemporaries(string path) => AtomicFile.RemoveStaleTemporaries(path);

    /// <summary>SHA-256 of the header and the rest of <paramref name="payload"/>, read in 1 MiB pieces.</summary>
    private static byte[] Digest(byte[] header, Stream payload)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(header);
        var buffer = new byte[1 << 20];
        for (int n; (n = payload.Read(buffer)) > 0;) hash.AppendData(buffer, 0, n);
        return hash.GetHashAndReset();
    }


    /// <summary>The header of a checkpoint, after checking that the whole file is intact.</summary>
    public static CheckpointInfo ReadInfo(string path)
    {
        using var file = Open(path);
        return ReadVerified(path, file).Info;
    }

    /// <summary>
    /// Checks the file, then hands its payload to <paramref name="readPayload"/>; returns the header.
    /// </summary>
    public static CheckpointInfo Read(string path, Action<CheckpointInfo, BinaryReader> readPayload)
    {
        using var file = Open(path);
        var (info, payloadStart) = ReadVerified(path, file);
        file.Position = payloadStart;
        using var reader = new BinaryReader(file, Encoding.UTF8, leaveOpen: true);
        try
        {
            readPayload(info, reader);
        }
        catch (Exception e) when (e is ArgumentException or EndOfStreamException or InvalidDataException
            or NotImplementedException or FormatException)
        {
            throw new DiffusionException($"Checkpoint '{path}' does not fit its network " +
                $"({e.Message.Split('\n')[0]}). Was it written by a different configuration or version?", e);
        }
        if (file.Position != file.Length)
            throw new DiffusionException($"Checkpoint '{path}' holds {file.Length - file.Position} bytes more than " +
                $"its network reads; was it written by a different configuration?");
        return info;
    }

    private static FileStream Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        Diffusion.Runtime.Imaging.InputFile.CheckRegular(path, $"Checkpoint '{path}'");
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    private static (CheckpointInfo Info, long PayloadStart) ReadVerified(string path, FileStream file)
    {
        Span<byte> fixedPart = stackalloc byte[Magic.Length + 8];
        if (file.ReadAtLeast(fixedPart, fixedPart.Length, throwOnEndOfStream: false) < fixedPart.Length
            || !fixedPart[..Magic.Length].SequenceEqual(Magic))
        {
            if (fixedPart[..4].SequenceEqual("PK\u0003\u0004"u8))
                throw new DiffusionException($"Checkpoint '{path}' was written by the earlier libtorch-shim trainer " +
                    "(a libtorch archive); this TorchSharp trainer cannot read it. Export it with the trainer of " +
                        "that version (git history before the TorchSharp trainer) or train anew.");
            throw new DiffusionException($"'{path}' is not a Diffusion for .NET checkpoint (it does " +
                $"not start with DIFFCKPT).");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[Magic.Length..]);
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[(Magic.Length + 4)..]);
        if (version != FormatVersion)
            throw new DiffusionException($"Checkpoint '{path}' has format version {version}; this trainer reads " +
                $"version {FormatVersion}.");
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || file.Position + headerLength + sizeof(long)
            + HashBytes > file.Length)
            throw new DiffusionException($"Checkpoint '{path}' is truncated or damaged: its header " +
                $"claims {headerLength} bytes.");
        var header = new byte[headerLength];
        file.ReadExactly(header);
        Span<byte> lengthAndHash = stackalloc byte[sizeof(long) + HashBytes];
        file.ReadExactly(lengthAndHash);
        long payloadLength = BinaryPrimitives.ReadInt64LittleEndian(lengthAndHash);
        long payloadStart = file.Position;
        if (payloadLength != file.Length - payloadStart)
            throw new DiffusionException($"Checkpoint '{path}' is truncated or damaged: {file.Length - payloadStart} " +
                $"payload bytes where its header says {payloadLength}.");
        if (!Digest(header, file).AsSpan().SequenceEqual(lengthAndHash[sizeof(long)..]))
            throw new DiffusionException($"Checkpoint '{path}' is damaged: its contents do not match the SHA-256 " +
                $"recorded when it was written.");
        CheckpointInfo? info;
        try { info = JsonSerializer.Deserialize<CheckpointInfo>(header, Json); }
        catch (JsonException e)
        {
            throw new DiffusionException($"Checkpoint '{path}' has an unreadable header: {e.Message}", e);
        }
        if (info is null) throw new DiffusionException($"Checkpoint '{path}' has an empty header.");
        // The checksum guards against accidents; the values are checked as any input is, before they size anything.
        try
        {
            if (info.Config is null || info.ClassNames is null)
                throw new DiffusionException("its config or class names are missing.");
            if (info.Step < 0 || info.Step > info.Config.Steps)
                throw new DiffusionArgumentException(nameof(info.Step),
                    $"expected 0…{info.Config.Steps} (the run's steps), got {info.Step}.");
            info.Config.Validate();
            info.Config.Net.Validate(); // as fitted to the data when the run started
            info.Config.Diffusion.Validate("checkpoint header");
        }
        catch (DiffusionException e)
        {
            throw new DiffusionException($"Checkpoint '{path}' has a header no training run writes: {e.Message}", e);
        }
        return (info, payloadStart);
    }
}
