namespace Serve.Actors.Hosting;

/// <summary>Secrets on disk (API keys, the cluster certificate): readable by their owner only from the moment they exist.</summary>
public static class OwnerOnlyFile
{
    /// <summary>Options that create a new file (never open an existing one) with mode 0600 where there are modes.</summary>
    public static FileStreamOptions CreateNew()
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return options;
    }
}
