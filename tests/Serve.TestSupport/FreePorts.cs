using System.Net;
using System.Net.Sockets;

namespace Serve.TestSupport;

/// <summary>Free loopback ports for processes that must be told their ports up front.</summary>
public static class FreePorts
{
    private static readonly HashSet<int> Handed = [];

    /// <summary>Ports the OS reports free now, never the same one twice in this process.</summary>
    public static int[] Take(int count)
    {
        lock (Handed)
        {
            var ports = new List<int>();
            while (ports.Count < count)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                listener.Stop();
                if (Handed.Add(port))
                {
                    ports.Add(port);
                }
            }

            return [.. ports];
        }
    }
}
