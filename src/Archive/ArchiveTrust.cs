namespace Serve.Archive;

/// <summary>
/// Which archives a server accepts. A signed archive must verify against one of <see cref="Keys"/> (its
/// keyId picks the key), whatever <see cref="RequireSigned"/> says: a signature that is present but bad is
/// never ignored. With <see cref="RequireSigned"/>, unsigned archives and bare model files are refused too.
/// </summary>
public sealed record ArchiveTrust(bool RequireSigned, IReadOnlyList<TrustedKey> Keys)
{
    public static readonly ArchiveTrust None = new(false, []);

    /// <summary>
    /// Checks the unpacked archive at <paramref name="directory"/>: the key that signed it, null when it is
    /// unsigned and that is allowed, or an <see cref="ArchiveException"/> that says why it is refused.
    /// </summary>
    public TrustedKey? Verify(string directory)
    {
        if (ArchiveSignature.Read(directory) is not { } signature)
        {
            return RequireSigned
                ? throw new ArchiveException($"the archive is not signed (it has no {ArchiveSignature.RelativePath}) and this server accepts only " +
                                             "signed archives (Serve:Archives:RequireSigned); sign it with serve-archiver --sign-key KEY.pem")
                : null;
        }

        var key = Keys.FirstOrDefault(k => k.Id.Equals(signature.KeyId, StringComparison.OrdinalIgnoreCase))
                  ?? throw new ArchiveException($"the archive is signed by key {signature.KeyId}, which is not a trusted key of this server; " +
                                                "add the signer's public key to Serve:Archives:TrustedKeys, or sign the archive with a trusted key");
        if (key.Algorithm != signature.Algorithm)
        {
            throw new ArchiveException($"the archive's signature says {signature.Algorithm}, but trusted key {key.Id} ({key.Source}) is a {key.Algorithm} key");
        }

        return key.Verifies(ArchiveDigest.OfDirectory(directory), signature.Bytes())
            ? key
            : throw new ArchiveException($"the archive's content does not match its signature by key {key.Id}: it was changed after it " +
                                         "was signed (a file altered, added or removed), so it is not the archive that was signed");
    }

    /// <summary>Refuses a bare model file when signatures are required: only an archive can carry one.</summary>
    public void CheckBareModel()
    {
        if (RequireSigned)
        {
            throw new ArchiveException("a bare TorchScript file cannot carry a signature, and this server accepts only " +
                                       "signed archives (Serve:Archives:RequireSigned); archive it with serve-archiver --sign-key KEY.pem");
        }
    }
}
