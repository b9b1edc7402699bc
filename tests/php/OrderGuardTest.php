<?php

declare(strict_types=1);

use Bitrix\Main\Application;
use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Sale\Order;
use Bitrix\Sale\ResultError;
use PHPUnit\Framework\TestCase;

/**
 * The order rule against the real database syncd filled (tests/test_bitrix_module.py): each case
 * saves an order through the stand-in Order::save(), which fires sale / OnSaleOrderBeforeSaved
 * through EventManager to the handler the module's installer registered.
 * Users (SYNCD_PHP_USERS): overdue - debt 125 000, overdue 25 000, limit 200 000; limit - debt 90 000,
 * limit 100 000, nothing overdue; two - two counterparties (RUB, and USD with 300 overdue); nolink - none.
 */
final class OrderGuardTest extends TestCase
{
    private const MODULE = 'syncd.settlements';

    /** @var array<string, int> */
    private static array $users;

    public static function setUpBeforeClass(): void
    {
        self::$users = json_decode((string)getenv('SYNCD_PHP_USERS'), true, 512, JSON_THROW_ON_ERROR);
    }

    protected function setUp(): void
    {
        Option::delete(self::MODULE);
        CEventLog::$records = [];
        $GLOBALS['USER'] = new CUser(self::$users['overdue'], [2, 5]);
        Application::setConnection(syncd_test_connection());
    }

    private function order(string $who, float $price): Order
    {
        $order = Order::create('s1', (string)self::$users[$who], 'RUB'); // USER_ID is a string in the kernel
        $order->setField('PRICE', $price);
        return $order;
    }

    private static function text(string $s): string
    {
        return str_replace("\u{00A0}", ' ', $s);
    }

    /** @return list<string> */
    private static function logged(string $severity): array
    {
        return array_values(array_map(static fn(array $r): string => (string)$r['DESCRIPTION'],
            array_filter(CEventLog::$records, static fn(array $r): bool => $r['SEVERITY'] === $severity
                && $r['AUDIT_TYPE_ID'] === 'SYNCD_SETTLEMENTS' && $r['MODULE_ID'] === self::MODULE)));
    }

    public function testInstallerRegisteredTheD7Handler(): void
    {
        $handlers = EventManager::getInstance()->findEventHandlers('sale', 'OnSaleOrderBeforeSaved');
        self::assertSame([['FROM' => 'SALE', 'TYPE' => 'ONSALEORDERBEFORESAVED', 'TO_MODULE' => self::MODULE,
            'CLASS' => 'Syncd\Settlements\OrderGuard', 'METHOD' => 'onSaleOrderBeforeSaved', 'SORT' => 100]], $handlers);
        self::assertFileExists($_SERVER['DOCUMENT_ROOT'] . '/local/components/syncd/settlements/templates/.default/template.php');
    }

    public function testOverdueDebtRefusesANewOrderAndSaysHowMuch(): void
    {
        $result = $this->order('overdue', 1000.0)->save();
        self::assertFalse($result->isSuccess());
        $error = $result->getErrors()[0];
        self::assertInstanceOf(ResultError::class, $error);
        self::assertSame('SYNCD_OVERDUE', $error->getCode());
        self::assertSame('Оформление заказа недоступно: у вас просроченная задолженность 25 000,00 ₽. '
            . 'Оплатите 25 000,00 ₽ просроченной задолженности или свяжитесь с вашим менеджером.', self::text($error->getMessage()));
    }

    public function testOverdueRuleSwitchedOffAllows(): void
    {
        Option::set(self::MODULE, 'block_overdue', 'N');
        self::assertTrue($this->order('overdue', 1000.0)->save()->isSuccess());
    }

    public function testOverdueOnOneOfTwoCounterpartiesRefuses(): void
    {
        $result = $this->order('two', 10.0)->save();
        self::assertFalse($result->isSuccess());
        self::assertStringContainsString('просроченная задолженность 300,00 $.', self::text($result->getErrorMessages()[0]));
    }

    public function testOverTheCreditLimitRefusedWhenSetToRefuse(): void
    {
        Option::set(self::MODULE, 'over_limit', 'refuse');
        $result = $this->order('limit', 20000.0)->save();
        self::assertFalse($result->isSuccess());
        self::assertSame('SYNCD_CREDIT_LIMIT', $result->getErrors()[0]->getCode());
        self::assertStringContainsString('задолженность 90 000,00 ₽ и заказ на 20 000,00 ₽ больше лимита 100 000,00 ₽ (доступно 10 000,00 ₽)',
            self::text($result->getErrorMessages()[0]));
    }

    public function testOverTheCreditLimitWarnedAllowsAndLogs(): void
    {
        Option::set(self::MODULE, 'over_limit', 'warn');
        self::assertTrue($this->order('limit', 20000.0)->save()->isSuccess());
        $warnings = self::logged('WARNING');
        self::assertCount(1, $warnings);
        self::assertStringContainsString('credit limit', $warnings[0]);
        self::assertSame(self::$users['limit'], CEventLog::$records[0]['ITEM_ID']);
    }

    public function testOverTheCreditLimitWithOptionNoneAllowsSilently(): void
    {
        Option::set(self::MODULE, 'over_limit', 'none');
        self::assertTrue($this->order('limit', 20000.0)->save()->isSuccess());
        self::assertSame([], CEventLog::$records);
    }

    public function testWithinTheCreditLimitAllowed(): void
    {
        Option::set(self::MODULE, 'over_limit', 'refuse');
        self::assertTrue($this->order('limit', 10000.0)->save()->isSuccess());
    }

    public function testUserWithNoCounterpartyAllowed(): void
    {
        self::assertTrue($this->order('nolink', 1e6)->save()->isSuccess());
        self::assertSame([], CEventLog::$records);
    }

    public function testExemptGroupAllowed(): void
    {
        $GLOBALS['USER'] = new CUser(1, [1]); // an administrator placing the order for the buyer
        self::assertTrue($this->order('overdue', 1000.0)->save()->isSuccess());
        Option::set(self::MODULE, 'exempt_groups', '7, 9');
        $GLOBALS['USER'] = new CUser(50, [2, 9]); // a manager in group 9
        self::assertTrue($this->order('overdue', 1000.0)->save()->isSuccess());
        $GLOBALS['USER'] = new CUser(1, [1]); // administrators are no longer listed
        self::assertFalse($this->order('overdue', 1000.0)->save()->isSuccess());
    }

    public function testStaleDataAllowsAndLogsByDefault(): void
    {
        Option::set(self::MODULE, 'stale_hours', '1'); // the data is two hours old
        self::assertTrue($this->order('overdue', 1000.0)->save()->isSuccess());
        $warnings = self::logged('WARNING');
        self::assertCount(1, $warnings);
        self::assertMatchesRegularExpression('/stale \(as of \d\d\.\d\d\.\d{4} \d\d:\d\d\)/', $warnings[0]);
    }

    public function testStaleDataCheckedWhenSetToCheck(): void
    {
        Option::set(self::MODULE, 'stale_hours', '1');
        Option::set(self::MODULE, 'on_stale', 'check');
        self::assertFalse($this->order('overdue', 1000.0)->save()->isSuccess());
        self::assertCount(1, self::logged('INFO'));
    }

    public function testEditingAnExistingOrderIsNotBlocked(): void
    {
        $order = Order::existing(77, (string)self::$users['overdue'], 5000.0);
        self::assertTrue($order->save()->isSuccess());
    }

    public function testBlocksMissingAllowsAndLogs(): void
    {
        Application::setConnection(syncd_test_connection((string)getenv('SYNCD_PHP_DB_BARE')));
        self::assertTrue($this->order('overdue', 1000.0)->save()->isSuccess());
        $warnings = self::logged('WARNING');
        self::assertCount(1, $warnings);
        self::assertStringContainsString('HL-blocks of syncd are missing', $warnings[0]);
    }

    public function testDatabaseErrorAtCheckoutAllowsAndLogs(): void
    {
        $connection = syncd_test_connection();
        $connection->disconnect();
        Application::setConnection($connection);
        self::assertTrue($this->order('overdue', 1000.0)->save()->isSuccess());
        $errors = self::logged('ERROR');
        self::assertCount(1, $errors);
        self::assertStringStartsWith('order rule skipped: ', $errors[0]);
    }

    public function testRenamedBlockOptionFindsNoBlockAndAllows(): void
    {
        Option::set(self::MODULE, 'balance_block', 'NoSuchBlock');
        self::assertTrue($this->order('overdue', 1000.0)->save()->isSuccess());
        self::assertCount(1, self::logged('WARNING'));
    }

    public function testUninstallRemovesTheHandlerAndTheComponent(): void
    {
        $installer = new syncd_settlements();
        $installer->DoUninstall();
        try {
            self::assertSame([], EventManager::getInstance()->findEventHandlers('sale', 'OnSaleOrderBeforeSaved'));
            self::assertDirectoryDoesNotExist($_SERVER['DOCUMENT_ROOT'] . '/local/components/syncd/settlements');
            self::assertTrue($this->order('overdue', 1000.0)->save()->isSuccess());
        } finally {
            $installer->DoInstall();
        }
        self::assertFalse($this->order('overdue', 1000.0)->save()->isSuccess());
    }
}
