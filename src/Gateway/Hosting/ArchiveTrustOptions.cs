using Serve.Archive;

namespace Serve.Gateway.Hosting;

/// <summary>
/// Which model archives the gateway registers (section <c>Serve:Archives</c>, <see cref="GatewayOptions.Archives"/>).
/// A signed archive must verify against one of <see cref="TrustedKeys"/>, always; with <see cref="RequireSigned"/>,
/// unsigned archives and bare TorchScript files are refused too. Applies to the management API's registrations
/// and to load_models; Serve:Models entries are the operator's own configuration and are not checked.
/// </summary>
public sealed class ArchiveTrustOptions
{
    public const string Section = "Serve:Archives";

    /// <summary>Refuse archives that are not signed by a trusted key. Env: Serve__Archives__RequireSigned; config.properties require_signed_archives.</summary>
    public bool RequireSigned { get; set; }

    /// <summary>
    /// PEM public key files (ECDSA P-256 or P-384, or Ed25519) whose signatures are trusted; a signature's keyId
    /// picks the key. Env: Serve__Archives__TrustedKeys__0, ...
    /// </summary>
    public string[] TrustedKeys { get; set; } = [];

    /// <summary>The trust to check archives with, its keys read from their files now (a handful of small files).</summary>
    public ArchiveTrust Load() => new(RequireSigned, [.. TrustedKeys.Select(TrustedKey.Load)]);

    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        foreach (var file in TrustedKeys)
        {
            try
            {
                TrustedKey.Load(file);
            }
            catch (ArchiveException error)
            {
                problems.Add($"{Section}:TrustedKeys: {error.Message}");
            }
        }

        if (RequireSigned && TrustedKeys.Length == 0)
        {
            problems.Add($"{Section}:RequireSigned is true but {Section}:TrustedKeys names no public key, so no archive could be " +
                         "registered: add the signers' public keys (PEM files), or set RequireSigned to false");
        }

        return problems;
    }
}
