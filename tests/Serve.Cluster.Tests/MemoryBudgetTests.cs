using System.Globalization;
using System.Net;

namespace Serve.Cluster.Tests;

/// <summary>
/// A burst of large images queued at once is decoded a few at a time, not all as it arrives: the server
/// process stays within a memory budget and keeps serving another model meanwhile.
/// </summary>
public sealed class MemoryBudgetTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    // 16 MP each: decoded as the request arrived, the burst would hold about 32 x (64 MB bitmap + 192 MB
    // floats + a 192 MB copy); decoded a couple at a time and kept as bytes, a few hundred MB.
    private const int Burst = 32;
    private const int Side = 4000;
    private const long BudgetBytes = 2L * 1024 * 1024 * 1024;

    [Fact]
    public async Task A_burst_of_large_images_stays_within_the_memory_budget_and_others_are_served()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-memory-").FullName;
        try
        {
            TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));
            TorchScriptWriter.Detector(Path.Combine(store, "detector.pt"), new float[,] { { 1, 2, 3, 4 } }, [1], [0.9f]);
            await using var server = StandaloneServer.Start(Path.Combine(store, "data"), timeout: Timeout, arguments:
                ["--models", "tiny=tiny.pt,detector=detector.pt?handler=object_detector", "--model-store", store]);
            var inference = server.Inference;
            await Waiting.UntilAsync(async () => (await inference.GetAsync("/v2/health/ready", token)).IsSuccessStatusCode,
                Timeout, "tiny and the detector to serve", () => server.Process.Tail());
            var idle = PeakResidentBytes(server.Process.Id);

            var large = Images.Png(Side, Side);
            var tooLarge = Images.Png(5000, 5000);
            var burst = Enumerable.Range(0, Burst).Select(_ => inference.PostAsync("/predictions/detector", Png(large), token)).ToList();
            // The other model answers while the burst is queued and decoding: asked at once, since checking
            // the refusal below first could outlast the whole burst on a busy machine.
            var tinyAnswers = 0;
            while (burst.Any(b => !b.IsCompleted) && tinyAnswers < 200)
            {
                using var answer = await inference.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson), token);
                Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
                tinyAnswers++;
            }

            using (var refused = await inference.PostAsync("/predictions/detector", Png(tooLarge), token))
            {
                Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
                Assert.Contains("more than the allowed 16777216 pixels", await refused.Content.ReadAsStringAsync(token));
            }

            foreach (var response in await Task.WhenAll(burst))
            {
                using (response)
                {
                    Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync(token));
                }
            }

            var peak = PeakResidentBytes(server.Process.Id);
            output.WriteLine($"peak resident memory: {peak / 1048576} MB (idle {idle / 1048576} MB) for {Burst} images of {Side}x{Side}; " +
                             $"{tinyAnswers} tiny answers during the burst");
            Assert.True(tinyAnswers > 0, "tiny was not served while the burst was queued");
            Assert.True(peak < BudgetBytes, $"peak resident memory {peak / 1048576} MB is over the {BudgetBytes / 1048576} MB budget\n{server.Process.Tail()}");
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    private static ByteArrayContent Png(byte[] image)
    {
        var content = new ByteArrayContent(image);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        return content;
    }

    /// <summary>The process's peak resident set (VmHWM), from Linux's /proc.</summary>
    private static long PeakResidentBytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        var kilobytes = long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return kilobytes * 1024;
    }
}
