using System.Security.Cryptography;
using Serve.Archive;

namespace Serve.Archive.Tests;

/// <summary>
/// Signed archives on real files: what is signed, round trips for each algorithm and both layouts, and the
/// ways a hostile archive or a careless key tries to get through.
/// </summary>
public sealed class ArchiveSignatureTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("serve-signature-tests-").FullName;
    private readonly SigningKey _signer = SigningKey.Create(SignatureAlgorithms.EcdsaP256);

    public ArchiveSignatureTests()
    {
        File.WriteAllBytes(PathOf("model.pt"), [.. Enumerable.Range(0, 70_000).Select(i => (byte)(i * 7 % 251))]);
        File.WriteAllText(PathOf("index_to_name.json"), """{"0": "cat", "1": "dog"}""");
    }

    public void Dispose()
    {
        _signer.Dispose();
        Directory.Delete(_work, recursive: true);
    }

    private string PathOf(string name) => Path.Combine(_work, name);

    private ArchiveContents Contents(string name = "classifier") =>
        new(name, "1.0", PathOf("model.pt"), "image_classifier", null, [PathOf("index_to_name.json")]);

    /// <summary>The signer's public key as a server would have it: a PEM file, read back.</summary>
    private TrustedKey Trusted(SigningKey key)
    {
        var file = PathOf($"{key.Id}.pub.pem");
        File.WriteAllText(file, key.PublicKeyPem());
        return TrustedKey.Load(file);
    }

    private ArchiveTrust TrustingSigner(bool requireSigned = true) => new(requireSigned, [Trusted(_signer)]);

    /// <summary>A .mar signed by <paramref name="key"/>, unpacked as a server unpacks it; the directory.</summary>
    private string SignedAndUnpacked(SigningKey key, string name = "classifier")
    {
        var archive = PathOf(name + ".mar");
        ArchiveWriter.Write(archive, Contents(name), signer: key);
        var unpacked = PathOf(name + "-unpacked");
        SafeZip.Extract(archive, unpacked, ArchiveLimits.Default);
        return unpacked;
    }

    [Fact]
    public void The_digest_is_sha256_over_sorted_path_and_hash_lines_without_the_signature_file()
    {
        var directory = PathOf("digest");
        Directory.CreateDirectory(Path.Combine(directory, "MAR-INF"));
        File.WriteAllText(Path.Combine(directory, "model.pt"), "abc");
        File.WriteAllText(Path.Combine(directory, "MAR-INF", "MANIFEST.json"), "{}");
        File.WriteAllText(Path.Combine(directory, "MAR-INF", "SIGNATURE.json"), "not part of what is signed");

        // printf 'MAR-INF/MANIFEST.json\n<sha256 of {}>\nmodel.pt\n<sha256 of abc>\n' | sha256sum
        Assert.Equal("8f48e47ab80568c2d1b155f0ecb79e8cdaa25fffba6a9434b0987b4d222807b6",
            Convert.ToHexStringLower(ArchiveDigest.OfDirectory(directory)));
    }

    [Theory]
    [InlineData(SignatureAlgorithms.EcdsaP256)]
    [InlineData(SignatureAlgorithms.EcdsaP384)]
    [InlineData(SignatureAlgorithms.Ed25519)]
    public void A_signed_mar_verifies_after_it_is_unpacked(string algorithm)
    {
        using var key = SigningKey.Create(algorithm);
        var unpacked = SignedAndUnpacked(key);

        var signature = ArchiveSignature.Read(unpacked)!;
        Assert.Equal((algorithm, key.Id), (signature.Algorithm, signature.KeyId));
        var verified = new ArchiveTrust(RequireSigned: true, [Trusted(_signer), Trusted(key)]).Verify(unpacked);
        Assert.Equal(key.Id, verified?.Id);
        // The manifest is still TorchServe's, and the archive opens as before.
        Assert.Equal("model.pt", ModelArchive.Open(unpacked).SerializedFile);
    }

    [Fact]
    public void A_signed_archive_directory_verifies()
    {
        var directory = PathOf("classifier");
        ArchiveWriter.WriteDirectory(directory, Contents(), signer: _signer);
        Assert.Equal(_signer.Id, TrustingSigner().Verify(directory)?.Id);
    }

    [Fact]
    public void One_byte_of_the_model_changed_inside_the_mar_is_refused()
    {
        var archive = PathOf("classifier.mar");
        ArchiveWriter.Write(archive, Contents(), signer: _signer);
        HostileArchives.FlipOneBit(archive, "model.pt");

        SafeZip.Extract(archive, PathOf("unpacked"), ArchiveLimits.Default);
        var error = Assert.Throws<ArchiveException>(() => TrustingSigner().Verify(PathOf("unpacked")));
        Assert.Contains($"the archive's content does not match its signature by key {_signer.Id}: it was changed after it was signed", error.Message);
    }

    [Theory]
    [InlineData("added", "extra.txt")]
    [InlineData("added", ".hidden")]
    [InlineData("added", "MAR-INF/extra/handler.py")]
    [InlineData("removed", "index_to_name.json")]
    [InlineData("renamed", "index_to_name.json")]
    [InlineData("changed", "MAR-INF/MANIFEST.json")]
    public void A_file_added_removed_renamed_or_changed_after_signing_is_refused(string change, string file)
    {
        var unpacked = SignedAndUnpacked(_signer);
        var path = Path.Combine(unpacked, file);
        switch (change)
        {
            case "added":
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllText(path, "import os");
                break;
            case "removed":
                File.Delete(path);
                break;
            case "renamed":
                File.Move(path, path + ".bak");
                break;
            default:
                File.AppendAllText(path, " ");
                break;
        }

        var error = Assert.Throws<ArchiveException>(() => TrustingSigner().Verify(unpacked));
        Assert.Contains("does not match its signature", error.Message);
    }

    [Fact]
    public void A_signature_copied_onto_another_archive_is_refused()
    {
        var signed = SignedAndUnpacked(_signer, "first");
        File.WriteAllBytes(PathOf("model.pt"), [1, 2, 3]);
        var other = PathOf("other");
        ArchiveWriter.WriteDirectory(other, Contents("second"));
        File.Copy(Path.Combine(signed, ArchiveSignature.RelativePath), Path.Combine(other, ArchiveSignature.RelativePath));

        var error = Assert.Throws<ArchiveException>(() => TrustingSigner().Verify(other));
        Assert.Contains("does not match its signature", error.Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_signature_by_an_untrusted_key_is_refused_even_when_signatures_are_optional(bool requireSigned)
    {
        using var stranger = SigningKey.Create(SignatureAlgorithms.EcdsaP256);
        var unpacked = SignedAndUnpacked(stranger);

        var error = Assert.Throws<ArchiveException>(() => TrustingSigner(requireSigned).Verify(unpacked));
        Assert.Equal($"the archive is signed by key {stranger.Id}, which is not a trusted key of this server; add the signer's public key " +
                     "to Serve:Archives:TrustedKeys, or sign the archive with a trusted key", error.Message);
        Assert.Throws<ArchiveException>(() => ArchiveTrust.None.Verify(unpacked));
    }

    [Fact]
    public void A_signature_that_names_a_trusted_key_but_another_algorithm_is_refused()
    {
        var unpacked = SignedAndUnpacked(_signer);
        var file = Path.Combine(unpacked, ArchiveSignature.RelativePath);
        var forged = ArchiveSignature.Parse(File.ReadAllText(file)) with { Algorithm = SignatureAlgorithms.Ed25519 };
        File.WriteAllText(file, forged.ToJson());

        var error = Assert.Throws<ArchiveException>(() => TrustingSigner().Verify(unpacked));
        Assert.Contains($"the archive's signature says Ed25519, but trusted key {_signer.Id}", error.Message);
    }

    [Theory]
    [InlineData("this is not json", "MAR-INF/SIGNATURE.json is not a valid signature file")]
    [InlineData("", "MAR-INF/SIGNATURE.json is not a valid signature file")]
    [InlineData("[]", "MAR-INF/SIGNATURE.json is not a valid signature file")]
    [InlineData("""{"algorithm": "ECDSA-P256-SHA256"}""", "missing required properties")]
    [InlineData("""{"algorithm": null, "keyId": "KEY", "signature": "AAAA"}""", "MAR-INF/SIGNATURE.json is not a valid signature file")]
    [InlineData("""{"algorithm": "RSA-SHA1", "keyId": "KEY", "signature": "AAAA"}""", "algorithm 'RSA-SHA1' is not supported")]
    [InlineData("""{"algorithm": "ECDSA-P256-SHA256", "keyId": "me", "signature": "AAAA"}""", "keyId must be the hex SHA-256 of the signer's public key")]
    [InlineData("""{"algorithm": "ECDSA-P256-SHA256", "keyId": "KEY", "signature": "%%%"}""", "signature must be base64, not '%%%'")]
    [InlineData("""{"algorithm": "ECDSA-P256-SHA256", "keyId": "KEY", "signature": ""}""", "signature must be base64")]
    public void A_signature_file_that_is_not_a_signature_is_refused_with_what_is_wrong(string json, string message)
    {
        var unpacked = SignedAndUnpacked(_signer);
        File.WriteAllText(Path.Combine(unpacked, ArchiveSignature.RelativePath), json.Replace("KEY", _signer.Id, StringComparison.Ordinal));

        var error = Assert.Throws<ArchiveException>(() => TrustingSigner(requireSigned: false).Verify(unpacked));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void A_huge_signature_file_is_refused_before_it_is_parsed()
    {
        var unpacked = SignedAndUnpacked(_signer);
        File.WriteAllText(Path.Combine(unpacked, ArchiveSignature.RelativePath), new string(' ', 1 << 20));
        var error = Assert.Throws<ArchiveException>(() => TrustingSigner().Verify(unpacked));
        Assert.Contains("too large to be a signature", error.Message);
    }

    [Fact]
    public void An_unsigned_archive_passes_only_while_signatures_are_not_required()
    {
        var directory = PathOf("unsigned");
        ArchiveWriter.WriteDirectory(directory, Contents());
        Assert.Null(TrustingSigner(requireSigned: false).Verify(directory));
        Assert.Null(ArchiveTrust.None.Verify(directory));

        var error = Assert.Throws<ArchiveException>(() => TrustingSigner().Verify(directory));
        Assert.StartsWith("the archive is not signed (it has no MAR-INF/SIGNATURE.json) and this server accepts only signed archives", error.Message,
            StringComparison.Ordinal);
        Assert.StartsWith("a bare TorchScript file cannot carry a signature",
            Assert.Throws<ArchiveException>(() => TrustingSigner().CheckBareModel()).Message, StringComparison.Ordinal);
        TrustingSigner(requireSigned: false).CheckBareModel();
    }

    [Fact]
    public void A_symbolic_link_in_a_signed_directory_is_refused()
    {
        var directory = PathOf("linked");
        ArchiveWriter.WriteDirectory(directory, Contents(), signer: _signer);
        File.CreateSymbolicLink(Path.Combine(directory, "passwd"), "/etc/passwd");
        var error = Assert.Throws<ArchiveException>(() => TrustingSigner().Verify(directory));
        Assert.Contains("the archive entry 'passwd' is a symbolic link", error.Message);
    }

    [Fact]
    public void A_name_with_a_line_break_cannot_be_signed_or_verified()
    {
        // "a\n<hash>\nb" would read as two entries: names with control characters are refused outright.
        var error = Assert.Throws<ArchiveException>(() => ArchiveDigest.Of([("a\nb", new byte[32])]));
        Assert.Contains("has a control character in its name", error.Message);
    }

    [Fact]
    public void Keys_in_openssl_formats_load_and_agree_on_their_id()
    {
        // openssl ecparam -genkey -noout writes SEC1 ("EC PRIVATE KEY"); openssl ec -pubout and genpkey's pkey -pubout write SPKI.
        using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        File.WriteAllText(PathOf("sec1.pem"), ecdsa.ExportECPrivateKeyPem());
        File.WriteAllText(PathOf("sec1.pub.pem"), ecdsa.ExportSubjectPublicKeyInfoPem());
        using var fromSec1 = SigningKey.Load(PathOf("sec1.pem"));
        Assert.Equal(SignatureAlgorithms.KeyIdOf(ecdsa.ExportSubjectPublicKeyInfo()), fromSec1.Id);
        Assert.Equal(fromSec1.Id, TrustedKey.Load(PathOf("sec1.pub.pem")).Id);

        // openssl genpkey -algorithm ed25519 writes PKCS#8 ("PRIVATE KEY"), as keygen does for every algorithm.
        foreach (var algorithm in SignatureAlgorithms.All)
        {
            using var created = SigningKey.Create(algorithm);
            File.WriteAllText(PathOf("pkcs8.pem"), created.PrivateKeyPem());
            using var loaded = SigningKey.Load(PathOf("pkcs8.pem"));
            Assert.Equal((algorithm, created.Id), (loaded.Algorithm, loaded.Id));
            Assert.StartsWith("-----BEGIN PRIVATE KEY-----", created.PrivateKeyPem(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Key_files_that_cannot_be_used_say_why()
    {
        File.WriteAllText(PathOf("notes.txt"), "just some text");
        File.WriteAllText(PathOf("private.pem"), _signer.PrivateKeyPem());
        using (var rsa = RSA.Create(2048))
        {
            File.WriteAllText(PathOf("rsa.pub.pem"), rsa.ExportSubjectPublicKeyInfoPem());
        }

        using (var k1 = ECDsa.Create(ECCurve.CreateFromFriendlyName("secP256k1")))
        {
            File.WriteAllText(PathOf("k1.pub.pem"), k1.ExportSubjectPublicKeyInfoPem());
            File.WriteAllText(PathOf("k1.pem"), k1.ExportECPrivateKeyPem());
        }

        string Trust(string file) => Assert.Throws<ArchiveException>(() => TrustedKey.Load(PathOf(file))).Message;
        string Sign(string file) => Assert.Throws<ArchiveException>(() => SigningKey.Load(PathOf(file))).Message;

        Assert.Equal($"the public key file '{PathOf("missing.pem")}' does not exist", Trust("missing.pem"));
        Assert.StartsWith($"{PathOf("notes.txt")} is not a PEM public key Serve can use: give an ECDSA P-256 or P-384 key or an Ed25519 key",
            Trust("notes.txt"), StringComparison.Ordinal);
        Assert.StartsWith($"{PathOf("private.pem")} holds a private key; a server needs only the public key", Trust("private.pem"), StringComparison.Ordinal);
        Assert.StartsWith($"{PathOf("rsa.pub.pem")} is not a public key Serve can use", Trust("rsa.pub.pem"), StringComparison.Ordinal);
        Assert.StartsWith($"{PathOf("k1.pub.pem")} is not a public key Serve can use", Trust("k1.pub.pem"), StringComparison.Ordinal);

        Assert.Equal($"the private key file '{PathOf("missing.pem")}' does not exist", Sign("missing.pem"));
        Assert.StartsWith($"{PathOf("rsa.pub.pem")} is not a PEM private key Serve can use (it holds a PUBLIC KEY)", Sign("rsa.pub.pem"), StringComparison.Ordinal);
        Assert.StartsWith($"{PathOf("k1.pem")} is not a private key Serve can use", Sign("k1.pem"), StringComparison.Ordinal);
    }

    [Fact]
    public void A_pin_is_the_files_sha256_and_a_mismatch_names_both_hashes()
    {
        var actual = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(PathOf("model.pt"))));
        Assert.Equal(actual, ArchivePin.Check(PathOf("model.pt"), null));
        Assert.Equal(actual, ArchivePin.Check(PathOf("model.pt"), actual.ToUpperInvariant()));

        var wrong = new string('0', 64);
        var error = Assert.Throws<ArchiveException>(() => ArchivePin.Check(PathOf("model.pt"), wrong));
        Assert.Equal($"the file does not match the sha256 given for it: its SHA-256 is {actual}, the sha256 given is {wrong}; " +
                     "it is not the file that was pinned (replaced or corrupted?)", error.Message);

        Assert.True(ArchivePin.IsValid(actual.ToUpperInvariant()));
        Assert.False(ArchivePin.IsValid(actual[..63]));
        Assert.False(ArchivePin.IsValid(actual[..63] + "g"));
    }
}
