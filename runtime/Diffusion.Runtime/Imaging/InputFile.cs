using System.Runtime.InteropServices;

namespace Diffusion.Runtime.Imaging;

/// <summary>
/// Reading files that come from outside with a bound decided before reading: only regular files (a FIFO would block
/// forever, <c>/dev/zero</c> never ends, a directory is no input), each kind of input capped by size. Errors name the
/// file and what was expected, in one line.
/// </summary>
public static partial class InputFile
{
    /// <summary>Config files (JSON): the largest real ones are a few KiB.</summary>
    public const long MaxConfigBytes = 1 << 20;

    /// <summary>What a path is, from <c>stat</c> (following links).</summary>
    public enum Kind
    {
        /// <summary>A regular file (or a platform where the check does not run).</summary>
        Regular,
        /// <summary>A directory.</summary>
        Directory,
        /// <summary>A named pipe.</summary>
        Fifo,
        /// <summary>A character or block device, such as /dev/zero.</summary>
        Device,
        /// <summary>A socket.</summary>
        Socket,
        /// <summary>Nothing is there.</summary>
        Missing,
    }

    /// <summary>What <paramref name="path"/> is (links followed).</summary>
    public static unsafe Kind KindOf(string path)
    {
        if (!OperatingSystem.IsLinux()) return File.Exists(path) ? Kind.Regular
            : Directory.Exists(path) ? Kind.Directory : Kind.Missing;
        int modeOffset = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 24, // st_dev, st_ino, st_nlink (8 bytes each), st_mode
            Architecture.Arm64 => 16, // st_dev, st_ino, st_mode (the generic layout)
            _ => -1,
        };
        if (modeOffset < 0) return File.Exists(path) ? Kind.Regular : Kind.Missing;
        byte* buffer = stackalloc byte[256]; // struct stat is 144 bytes on x64, 128 on arm64
        if (Stat(path, buffer) != 0) return Kind.Missing;
        uint mode = *(uint*)(buffer + modeOffset) & 0xF000; // S_IFMT
        return mode switch
        {
            0x8000 => Kind.Regular,
            0x4000 => Kind.Directory,
            0x1000 => Kind.Fifo,
            0x2000 or 0x6000 => Kind.Device,
            0xC000 => Kind.Socket,
            _ => Kind.Device,
        };
    }

    /// <summary>
    /// What <paramref name="path"/> is on disk, links followed, as a key: equal for two paths of one file or folder
    /// (stat's device and inode on Linux; elsewhere the full path, its last link resolved). Null when it is missing.
    /// </summary>
    public static unsafe string? IdentityOf(string path)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture is not (Architecture.X64
            or Architecture.Arm64))
        {
            var info = new DirectoryInfo(path);
            return info.Exists || File.Exists(path) ? (info.ResolveLinkTarget(true) ?? info).FullName : null;
        }
        byte* buffer = stackalloc byte[256];
        if (Stat(path, buffer) != 0) return null;
        return $"{*(ulong*)buffer}:{*(ulong*)(buffer + 8)}"; // st_dev, st_ino: the first two fields on both layouts
    }

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Stat(string path, byte* buffer);

    /// <summary>
    /// Throws unless <paramref name="path"/> is a regular file; <paramref name="what"/> names it ("--config
    /// 'x.json'", "model 'm.onnx'").
    /// </summary>
    public static void CheckRegular(string path, string what)
    {
        var kind = KindOf(path);
        if (kind == Kind.Regular) return;
        throw new DiffusionException(kind switch
        {
            Kind.Missing => $"{what} does not exist.",
            Kind.Directory => $"{what} is a folder; expected a file.",
            Kind.Fifo => $"{what} is a named pipe; expected a regular file (a pipe is read by nobody here).",
            Kind.Socket => $"{what} is a socket; expected a regular file.",
            _ => $"{what} is a device; expected a regular file.",
        });
    }

    /// <summary>The bytes of a regular file of at most <paramref name="maxBytes"/>.</summary>
    public static byte[] ReadAllBytes(string path, long maxBytes, string what)
    {
        CheckRegular(path, what);
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (file.Length > maxBytes)
                throw new DiffusionException($"{what} is {file.Length:N0} bytes; at most {maxBytes:N0} are read.");
            var bytes = new byte[file.Length];
            file.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusionException($"Cannot read {what}: {e.Message}", e);
        }
    }

    /// <summary>The UTF-8 text of a regular file of at most <paramref name="maxBytes"/>.</summary>
    public static string ReadAllText(string path, long maxBytes, string what) =>
        System.Text.Encoding.UTF8.GetString(ReadAllBytes(path, maxBytes, what)).TrimStart('\uFEFF');
}
