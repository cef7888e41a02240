namespace Diffusion.Trainer.Training;

/// <summary>
/// One training run per folder: an exclusive lock on <c>{out}/.train.lock</c> (an advisory <c>flock</c> on Linux,
/// through <see cref="FileShare.None"/>) held while the run lives. A second run on the same folder is refused in one
/// line instead of interleaving its steps with the first one's; the lock ends with the process, however it ends.
/// </summary>
internal sealed class RunFolderLock : IDisposable
{
    private readonly FileStream _file;

    private RunFolderLock(FileStream file) => _file = file;

    /// <summary>Takes the lock of <paramref name="folder"/> (which must exist), or says who holds it.</summary>
    public static RunFolderLock Acquire(string folder)
    {
        var path = Path.Combine(folder, ".train.lock");
        try
        {
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            file.SetLength(0);
            using (var writer = new StreamWriter(file, leaveOpen: true)) writer.Write(Environment.ProcessId);
            file.Flush();
            return new RunFolderLock(file);
        }
        catch (IOException e)
        {
            throw new DiffusionException($"'{folder}' is in use by another training run (it holds '{path}'); wait " +
                $"for it to end or train into another folder ({e.Message.Trim()}).", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new DiffusionException($"Cannot lock the run folder '{folder}': {e.Message}", e);
        }
    }

    public void Dispose() => _file.Dispose();
}
