using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Serve.Actors.Hosting;

/// <summary>
/// The cluster's own certificate: self-signed, pinned by thumbprint on every node (no CA is involved), kept as
/// a PKCS#12 file readable only by its owner. The founding node writes one on first start; <see cref="Verb"/>
/// writes one for a cluster of several hosts, to copy to each.
/// </summary>
public static class ClusterCertificate
{
    /// <summary>The file name in <c>Serve:DataDirectory</c> that a node uses when no keystore is configured.</summary>
    public const string DefaultFileName = "cluster.p12";

    /// <summary><c>Serve.Node.dll cluster-certificate PATH</c> (or Serve.Gateway.dll): writes a new certificate and exits.</summary>
    public const string Verb = "cluster-certificate";

    private static readonly TimeSpan Lifetime = TimeSpan.FromDays(10 * 365);

    /// <summary>
    /// Writes a new certificate to <paramref name="path"/> (mode 0600, no password) and returns its
    /// thumbprint. Never overwrites: a file already there is the cluster's, and other nodes may hold a copy.
    /// </summary>
    public static string Create(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        // ECDSA P-256: generated in a millisecond and a short handshake, unlike a 2048-bit RSA key.
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=serve-cluster", key, HashAlgorithmName.SHA256);
        // Both ends of a mutual TLS connection present it: as a server and as a client.
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.Add(Lifetime));
        var contents = certificate.Export(X509ContentType.Pkcs12);

        // Written beside the target and renamed into place, so a reader never sees half a file.
        var partial = $"{path}.{Environment.ProcessId}.partial";
        using (var file = new FileStream(partial, OwnerOnlyFile.CreateNew()))
        {
            file.Write(contents);
        }

        try
        {
            File.Move(partial, path, overwrite: false);
        }
        finally
        {
            File.Delete(partial);
        }

        return certificate.Thumbprint;
    }

    /// <summary>The <see cref="Verb"/> command: <c>cluster-certificate PATH</c>. Returns the process exit code.</summary>
    public static int RunCommand(string[] args)
    {
        if (args is not [Verb, var path])
        {
            Console.Error.WriteLine($"usage: {Verb} PATH   writes a new cluster certificate (PKCS#12) to PATH; give every node a copy " +
                                    "(Serve:Cluster:Tls:Keystore=PATH)");
            return 2;
        }

        if (File.Exists(path))
        {
            Console.Error.WriteLine($"{path} exists; it is left as it is (delete it first to make a new one)");
            return 1;
        }

        var thumbprint = Create(path);
        Console.WriteLine($"wrote the cluster certificate {Path.GetFullPath(path)} (SHA-1 thumbprint {thumbprint})");
        return 0;
    }
}
