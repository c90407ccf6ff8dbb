namespace Serve.Deployment.Tests;

/// <summary>The files of one stage at one <c>RUN</c>: its working directory and the paths COPY put in the image.</summary>
public sealed record RunView(DockerInstruction Run, string WorkDir, IReadOnlySet<string> Files)
{
    /// <summary>Whether the repository file <paramref name="relativePath"/> sits at the same relative path under the working directory.</summary>
    public bool Has(string relativePath) => Files.Contains(StageFiles.Combine(WorkDir, relativePath));
}

/// <summary>
/// Replays a stage's WORKDIR and COPY instructions against the build context (the repository, less what
/// .dockerignore leaves out) to tell which files each RUN can see. COPY --from and wildcards are not followed.
/// </summary>
public static class StageFiles
{
    public static IReadOnlyList<RunView> BeforeEachRun(DockerStage stage, string contextRoot, DockerIgnore ignore)
    {
        var views = new List<RunView>();
        var workDir = "/";
        var files = new HashSet<string>(StringComparer.Ordinal);
        foreach (var instruction in stage.Instructions)
        {
            switch (instruction.Keyword)
            {
                case "WORKDIR":
                    workDir = Combine(workDir, Dockerfile.Words(instruction.Arguments).Single());
                    break;
                case "COPY" or "ADD":
                    var copy = Dockerfile.ParseCopy(instruction);
                    if (copy.From is null)
                    {
                        Copy(copy, workDir, contextRoot, ignore, files);
                    }

                    break;
                case "RUN":
                    views.Add(new RunView(instruction, workDir, new HashSet<string>(files, StringComparer.Ordinal)));
                    break;
            }
        }

        return views;
    }

    /// <summary>Files under <paramref name="relativeDirectory"/> that the build context holds (relative, '/' separated).</summary>
    public static IEnumerable<string> ContextFiles(string contextRoot, string relativeDirectory, DockerIgnore ignore)
    {
        var start = Path.Combine(contextRoot, relativeDirectory);
        var pending = new Stack<string>([start]);
        while (pending.Count > 0)
        {
            var directory = pending.Pop();
            foreach (var file in Directory.EnumerateFiles(directory))
            {
                var relative = Relative(contextRoot, file);
                if (!ignore.IsExcluded(relative))
                {
                    yield return relative;
                }
            }

            foreach (var child in Directory.EnumerateDirectories(directory))
            {
                if (!ignore.IsExcluded(Relative(contextRoot, child)))
                {
                    pending.Push(child);
                }
            }
        }
    }

    public static string Relative(string root, string path) => Path.GetRelativePath(root, path).Replace('\\', '/');

    /// <summary>An absolute image path from a base directory and a path that may be relative; "." and ".." resolved.</summary>
    public static string Combine(string baseDirectory, string path)
    {
        var segments = new List<string>();
        var full = path.StartsWith('/') ? path : $"{baseDirectory}/{path}";
        foreach (var segment in full.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (segment == "..")
            {
                if (segments.Count > 0)
                {
                    segments.RemoveAt(segments.Count - 1);
                }
            }
            else if (segment != ".")
            {
                segments.Add(segment);
            }
        }

        return "/" + string.Join('/', segments);
    }

    private static void Copy(CopyInstruction copy, string workDir, string contextRoot, DockerIgnore ignore, HashSet<string> files)
    {
        var destination = Combine(workDir, copy.Destination);
        var intoDirectory = copy.Destination.EndsWith('/') || copy.Destination is "." or "./" || copy.Sources.Count > 1;
        foreach (var source in copy.Sources)
        {
            var relative = source.Trim('/');
            var onDisk = Path.Combine(contextRoot, relative);
            if (Directory.Exists(onDisk))
            {
                // A directory's contents go into the destination directory.
                foreach (var file in ContextFiles(contextRoot, relative, ignore))
                {
                    files.Add(Combine(destination, Path.GetRelativePath(onDisk, Path.Combine(contextRoot, file)).Replace('\\', '/')));
                }
            }
            else if (File.Exists(onDisk) && !ignore.IsExcluded(relative))
            {
                files.Add(intoDirectory ? Combine(destination, Path.GetFileName(relative)) : destination);
            }
        }
    }
}
