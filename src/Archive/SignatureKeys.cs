using System.Security.Cryptography;
using Ed25519Key = NSec.Cryptography.Key;
using Ed25519PublicKey = NSec.Cryptography.PublicKey;
using KeyBlobFormat = NSec.Cryptography.KeyBlobFormat;
using KeyCreationParameters = NSec.Cryptography.KeyCreationParameters;
using KeyExportPolicies = NSec.Cryptography.KeyExportPolicies;
using NSecSignature = NSec.Cryptography.SignatureAlgorithm;

namespace Serve.Archive;

/// <summary>
/// The signature algorithms of MAR-INF/SIGNATURE.json. ECDSA signs the archive digest with the curve's
/// usual hash (SHA-256 for P-256, SHA-384 for P-384); Ed25519 signs the digest itself.
/// </summary>
public static class SignatureAlgorithms
{
    public const string EcdsaP256 = "ECDSA-P256-SHA256";
    public const string EcdsaP384 = "ECDSA-P384-SHA384";
    public const string Ed25519 = "Ed25519";

    public static readonly string[] All = [EcdsaP256, EcdsaP384, Ed25519];

    private const string P256Oid = "1.2.840.10045.3.1.7";
    private const string P384Oid = "1.3.132.0.34";

    /// <summary>A key id: the lowercase hex SHA-256 of a SubjectPublicKeyInfo DER.</summary>
    public static string KeyIdOf(byte[] subjectPublicKeyInfo) => Convert.ToHexStringLower(SHA256.HashData(subjectPublicKeyInfo));

    public static bool IsKeyId(string text) => text.Length == 64 && text.All(char.IsAsciiHexDigit);

    /// <summary>The algorithm for an ECDSA key's curve; null for curves Serve does not accept (secp256k1, brainpool, ...).</summary>
    internal static string? OfCurve(ECDsa key) => key.ExportParameters(includePrivateParameters: false).Curve.Oid?.Value switch
    {
        P256Oid => EcdsaP256,
        P384Oid => EcdsaP384,
        _ => null,
    };

    internal static HashAlgorithmName EcdsaHash(string algorithm) => algorithm == EcdsaP384 ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256;

    /// <summary>The first PEM block of a key file: its label and its DER bytes.</summary>
    internal static (string Label, byte[] Der) ReadPem(string pemFile, string what)
    {
        if (!File.Exists(pemFile))
        {
            throw new ArchiveException($"the {what} file '{pemFile}' does not exist");
        }

        var pem = File.ReadAllText(pemFile);
        return PemEncoding.TryFind(pem, out var fields)
            ? (pem[fields.Label], Convert.FromBase64String(pem[fields.Base64Data]))
            : throw Unsupported(pemFile, $"a PEM {what}");
    }

    internal static ArchiveException Unsupported(string source, string what, string? label = null) =>
        new($"{source} is not {what} Serve can use{(label is null ? string.Empty : $" (it holds a {label})")}: " +
            "give an ECDSA P-256 or P-384 key or an Ed25519 key in PEM (openssl ecparam -name prime256v1 -genkey -noout -out key.pem; " +
            "openssl ec -in key.pem -pubout -out pub.pem), or make a pair with serve-archiver keygen");
}

/// <summary>A public key that archives may be signed with (Serve:Archives:TrustedKeys), from its PEM file.</summary>
public sealed class TrustedKey
{
    private readonly byte[] _subjectPublicKeyInfo;

    private TrustedKey(string algorithm, byte[] subjectPublicKeyInfo, string source)
    {
        Algorithm = algorithm;
        _subjectPublicKeyInfo = subjectPublicKeyInfo;
        Id = SignatureAlgorithms.KeyIdOf(subjectPublicKeyInfo);
        Source = source;
    }

    /// <summary>The hex SHA-256 of the key's SubjectPublicKeyInfo DER, as SIGNATURE.json's keyId names it.</summary>
    public string Id { get; }

    public string Algorithm { get; }

    /// <summary>The file the key was read from.</summary>
    public string Source { get; }

    /// <summary>Reads a <c>-----BEGIN PUBLIC KEY-----</c> PEM file; a missing or unusable file is an <see cref="ArchiveException"/>.</summary>
    public static TrustedKey Load(string pemFile)
    {
        var (label, der) = SignatureAlgorithms.ReadPem(pemFile, "public key");
        if (label != "PUBLIC KEY")
        {
            throw label.Contains("PRIVATE", StringComparison.Ordinal)
                ? new ArchiveException($"{pemFile} holds a private key; a server needs only the public key " +
                                       "(openssl pkey -in key.pem -pubout -out pub.pem), and the private key should stay with the signer")
                : SignatureAlgorithms.Unsupported(pemFile, "a PEM public key", label);
        }

        try
        {
            using var ecdsa = ECDsa.Create();
            ecdsa.ImportSubjectPublicKeyInfo(der, out _);
            return new TrustedKey(SignatureAlgorithms.OfCurve(ecdsa) ?? throw SignatureAlgorithms.Unsupported(pemFile, "a public key"),
                ecdsa.ExportSubjectPublicKeyInfo(), pemFile);
        }
        catch (CryptographicException)
        {
            // Not an EC key: Ed25519 is the other kind Serve takes.
        }

        try
        {
            var ed25519 = Ed25519PublicKey.Import(NSecSignature.Ed25519, der, KeyBlobFormat.PkixPublicKey);
            return new TrustedKey(SignatureAlgorithms.Ed25519, ed25519.Export(KeyBlobFormat.PkixPublicKey), pemFile);
        }
        catch (FormatException)
        {
            throw SignatureAlgorithms.Unsupported(pemFile, "a public key");
        }
    }

    /// <summary>Whether <paramref name="signature"/> is this key's signature of <paramref name="digest"/>.</summary>
    public bool Verifies(byte[] digest, byte[] signature)
    {
        if (Algorithm == SignatureAlgorithms.Ed25519)
        {
            var key = Ed25519PublicKey.Import(NSecSignature.Ed25519, _subjectPublicKeyInfo, KeyBlobFormat.PkixPublicKey);
            return NSecSignature.Ed25519.Verify(key, digest, signature);
        }

        using var ecdsa = ECDsa.Create();
        ecdsa.ImportSubjectPublicKeyInfo(_subjectPublicKeyInfo, out _);
        return ecdsa.VerifyData(digest, signature, SignatureAlgorithms.EcdsaHash(Algorithm), DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }
}

/// <summary>A private key that signs archives (the archiver's --sign-key), or a new one from keygen.</summary>
public sealed class SigningKey : IDisposable
{
    private readonly ECDsa? _ecdsa;
    private readonly Ed25519Key? _ed25519;

    private SigningKey(ECDsa? ecdsa, Ed25519Key? ed25519, string algorithm)
    {
        _ecdsa = ecdsa;
        _ed25519 = ed25519;
        Algorithm = algorithm;
        Id = SignatureAlgorithms.KeyIdOf(SubjectPublicKeyInfo());
    }

    /// <summary>The hex SHA-256 of the public key's SubjectPublicKeyInfo DER: what servers look the key up by.</summary>
    public string Id { get; }

    public string Algorithm { get; }

    /// <summary>A new key for <paramref name="algorithm"/> (one of <see cref="SignatureAlgorithms.All"/>).</summary>
    public static SigningKey Create(string algorithm) => algorithm switch
    {
        SignatureAlgorithms.EcdsaP256 => new SigningKey(ECDsa.Create(ECCurve.NamedCurves.nistP256), null, algorithm),
        SignatureAlgorithms.EcdsaP384 => new SigningKey(ECDsa.Create(ECCurve.NamedCurves.nistP384), null, algorithm),
        SignatureAlgorithms.Ed25519 => new SigningKey(null, Ed25519Key.Create(NSecSignature.Ed25519,
            new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }), algorithm),
        _ => throw new ArchiveException($"algorithm '{algorithm}' is not supported: use one of {string.Join(", ", SignatureAlgorithms.All)}"),
    };

    /// <summary>
    /// Reads an unencrypted private key PEM: <c>EC PRIVATE KEY</c> (openssl ecparam -genkey) or <c>PRIVATE KEY</c>
    /// (PKCS#8: keygen, openssl genpkey). A missing or unusable file is an <see cref="ArchiveException"/>.
    /// </summary>
    public static SigningKey Load(string pemFile)
    {
        var (label, der) = SignatureAlgorithms.ReadPem(pemFile, "private key");
        if (label is not ("EC PRIVATE KEY" or "PRIVATE KEY"))
        {
            throw label == "ENCRYPTED PRIVATE KEY"
                ? new ArchiveException($"{pemFile} is encrypted; the archiver reads unencrypted keys (openssl pkey -in {pemFile} -out plain.key.pem, kept owner-only)")
                : SignatureAlgorithms.Unsupported(pemFile, "a PEM private key", label);
        }

        if (ImportEcdsa(label, der) is { } ecdsa)
        {
            if (SignatureAlgorithms.OfCurve(ecdsa) is { } algorithm)
            {
                return new SigningKey(ecdsa, null, algorithm);
            }

            ecdsa.Dispose();
            throw SignatureAlgorithms.Unsupported(pemFile, "a private key");
        }

        if (label == "PRIVATE KEY")
        {
            try
            {
                // PKCS#8 that is not EC: Ed25519 is the other kind Serve takes.
                return new SigningKey(null, Ed25519Key.Import(NSecSignature.Ed25519, der, KeyBlobFormat.PkixPrivateKey), SignatureAlgorithms.Ed25519);
            }
            catch (FormatException)
            {
                // Neither: RSA, DSA, X25519, ...
            }
        }

        throw SignatureAlgorithms.Unsupported(pemFile, "a private key");
    }

    /// <summary>The signature file for an archive whose <see cref="ArchiveDigest"/> is <paramref name="digest"/>.</summary>
    public ArchiveSignature Sign(byte[] digest)
    {
        var signature = _ed25519 is not null
            ? NSecSignature.Ed25519.Sign(_ed25519, digest)
            : _ecdsa!.SignData(digest, SignatureAlgorithms.EcdsaHash(Algorithm), DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return new ArchiveSignature { Algorithm = Algorithm, KeyId = Id, Signature = Convert.ToBase64String(signature) };
    }

    /// <summary>The private key as unencrypted PKCS#8 PEM (<c>-----BEGIN PRIVATE KEY-----</c>).</summary>
    public string PrivateKeyPem() => PemEncoding.WriteString("PRIVATE KEY", _ed25519 is not null
        ? _ed25519.Export(KeyBlobFormat.PkixPrivateKey)
        : _ecdsa!.ExportPkcs8PrivateKey()) + "\n";

    /// <summary>The public key as PEM (<c>-----BEGIN PUBLIC KEY-----</c>), for servers' Serve:Archives:TrustedKeys.</summary>
    public string PublicKeyPem() => PemEncoding.WriteString("PUBLIC KEY", SubjectPublicKeyInfo()) + "\n";

    /// <summary>The EC key in <paramref name="der"/> (SEC1 or PKCS#8); null when it holds none.</summary>
    private static ECDsa? ImportEcdsa(string label, byte[] der)
    {
        var ecdsa = ECDsa.Create();
        try
        {
            if (label == "EC PRIVATE KEY")
            {
                ecdsa.ImportECPrivateKey(der, out _);
            }
            else
            {
                ecdsa.ImportPkcs8PrivateKey(der, out _);
            }

            return ecdsa;
        }
        catch (CryptographicException)
        {
            ecdsa.Dispose();
            return null;
        }
    }

    private byte[] SubjectPublicKeyInfo() => _ed25519 is not null
        ? _ed25519.PublicKey.Export(KeyBlobFormat.PkixPublicKey)
        : _ecdsa!.ExportSubjectPublicKeyInfo();

    public void Dispose()
    {
        _ecdsa?.Dispose();
        _ed25519?.Dispose();
    }
}
