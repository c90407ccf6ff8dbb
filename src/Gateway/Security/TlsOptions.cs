using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Serve.Gateway.Security;

/// <summary>
/// The certificate the listeners whose address is <c>https://</c> serve (section <c>Serve:Tls</c>): PEM files
/// (TorchServe's certificate_file and private_key_file) or a PKCS#12 keystore (keystore, keystore_pass).
/// </summary>
public sealed class TlsOptions
{
    public const string Section = "Serve:Tls";

    /// <summary>PEM certificate (chain). Env: Serve__Tls__CertificateFile.</summary>
    public string? CertificateFile { get; set; }

    /// <summary>PEM private key of <see cref="CertificateFile"/>. Env: Serve__Tls__PrivateKeyFile.</summary>
    public string? PrivateKeyFile { get; set; }

    /// <summary>PKCS#12 (.p12/.pfx) file with the certificate and its key. Env: Serve__Tls__Keystore.</summary>
    public string? Keystore { get; set; }

    /// <summary>The keystore's password. Env: Serve__Tls__KeystorePassword.</summary>
    public string? KeystorePassword { get; set; }

    public bool IsConfigured => CertificateFile is not null || Keystore is not null;

    /// <summary>Loads the certificate with its private key; throws <see cref="TlsException"/> saying what is wrong.</summary>
    public X509Certificate2 Load()
    {
        if (Keystore is not null && CertificateFile is not null)
        {
            throw new TlsException("give either Serve:Tls:CertificateFile with PrivateKeyFile (PEM) or Serve:Tls:Keystore (PKCS#12), not both");
        }

        try
        {
            X509Certificate2 certificate;
            if (Keystore is not null)
            {
                certificate = X509CertificateLoader.LoadPkcs12FromFile(Keystore, KeystorePassword);
            }
            else if (CertificateFile is not null && PrivateKeyFile is not null)
            {
                using var pem = X509Certificate2.CreateFromPemFile(CertificateFile, PrivateKeyFile);
                // Exported and reloaded: an ephemeral PEM key is not usable by SslStream on every platform.
                certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            }
            else
            {
                throw new TlsException("Serve:Tls:CertificateFile needs Serve:Tls:PrivateKeyFile (TorchServe's private_key_file)");
            }

            return certificate.HasPrivateKey
                ? certificate
                : throw new TlsException($"the certificate in {Keystore ?? CertificateFile} has no private key");
        }
        catch (Exception error) when (error is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new TlsException($"the TLS certificate could not be loaded from {Keystore ?? $"{CertificateFile} and {PrivateKeyFile}"}: {error.Message}");
        }
    }
}

/// <summary>A TLS setting that cannot work; the message says which and why.</summary>
public sealed class TlsException(string message) : Exception(message);
